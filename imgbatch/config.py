"""One typed settings object, read once from ``IMGBATCH_*`` environment variables.

Every limit the service enforces is named, defaulted and validated here (SPEC §6).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from imgbatch import __version__
from imgbatch.options import OutputFormat

MiB = 1024 * 1024


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGBATCH_", frozen=True, extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    broker_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    # How S3 output URLs are handed out: "presigned" GET URLs (private bucket) or
    # "public" object URLs under s3_public_base_url (public bucket or CDN).
    s3_url_mode: Literal["presigned", "public"] = "presigned"
    s3_public_base_url: str | None = None
    s3_presign_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)
    public_url: str = "http://127.0.0.1:8000"
    # Base of the sample CSV's photo URLs, when workers reach this service by another name
    # than browsers do (compose: http://api:8000); default: public_url.
    sample_base_url: str | None = None

    quality: int = Field(default=50, ge=1, le=95)
    # Defaults of a request's output options (SPEC §10, imgbatch/options.py).
    format: OutputFormat = "jpeg"
    max_size: int | None = Field(default=None, ge=16, le=16384)
    # libavif's speed, 0 (slowest, smallest) to 10 (fastest): see bench/README.md.
    avif_speed: int = Field(default=10, ge=0, le=10)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)

    max_upload_bytes: int = Field(default=50 * MiB, ge=1)
    max_rows: int = Field(default=100_000, ge=1)
    max_urls_per_row: int = Field(default=100, ge=1)
    max_url_length: int = Field(default=2048, ge=16)
    max_csv_errors: int = Field(default=100, ge=1)
    # An .xlsx upload unpacked (every part of the archive): the zip-bomb guard.
    max_workbook_bytes: int = Field(default=200 * MiB, ge=1)

    max_image_bytes: int = Field(default=25 * MiB, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_concurrency: int = Field(default=64, ge=1)
    fetch_per_host: int = Field(default=8, ge=1)
    fetch_retries: int = Field(default=3, ge=0, le=10)
    # Longest Retry-After we honour; a longer one is cut to this.
    fetch_retry_after_cap: float = Field(default=30.0, ge=0)
    allow_private_networks: str = ""
    # Sent with every image download: some catalogue hosts refuse clients without one.
    user_agent: str = Field(
        default=f"imgbatch/{__version__} (image fetcher)", pattern=r"^[^\x00-\x1f\x7f]+$"
    )

    webhook_secret: str | None = None
    webhook_retry_delays: str = "5,30,120,600,1800"
    webhook_timeout: float = Field(default=10.0, gt=0)

    lease_seconds: int = Field(default=120, ge=5)
    # Images per unit of work ("process a chunk"), and chunks in flight per request
    # (None: two per live worker process, see dispatch/policy.py).
    chunk_size: int = Field(default=32, ge=1, le=1000)
    chunks_per_request: int | None = Field(default=None, ge=1)
    # The Celery queue chunks travel on: deployments (or test runs) sharing a broker each
    # take their own.
    celery_queue: str = Field(default="imgbatch", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")

    api_keys: str = ""
    # Per API key: "key:whsec_...,key2:whsec_..."; a key not listed gets a generated secret.
    webhook_secrets: str = ""
    max_pending_images: int = Field(default=1_000_000, ge=1)
    uploads_per_minute: int = Field(default=60, ge=1)
    # Finished requests older than this many days are deleted with their images; 0 keeps all.
    retention_days: float = Field(default=0, ge=0)

    # Re-runs (SPEC §9): reuse outputs of unchanged inputs; false processes every image.
    reuse: bool = True

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("allow_private_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        # Parsed here, at start, so a typo stops the command before anything is stored.
        from imgbatch.fetch.addresses import AddressPolicy

        AddressPolicy(_split_csv(value))
        return value

    @field_validator("webhook_retry_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        for part in _split_csv(value):
            if float(part) < 0:
                raise ValueError("webhook retry delays must be non-negative seconds")
        return value

    @cached_property
    def allowed_private_networks(self) -> list[str]:
        return _split_csv(self.allow_private_networks)

    @cached_property
    def webhook_delays(self) -> list[float]:
        return [float(part) for part in _split_csv(self.webhook_retry_delays)]

    @cached_property
    def api_key_list(self) -> list[str]:
        return _split_csv(self.api_keys)

    @cached_property
    def webhook_secret_map(self) -> dict[str, str]:
        """IMGBATCH_WEBHOOK_SECRETS as {api key: secret}."""
        pairs = (part.partition(":") for part in _split_csv(self.webhook_secrets))
        return {key.strip(): secret.strip() for key, _, secret in pairs}

    @field_validator("webhook_secrets")
    @classmethod
    def _check_secret_pairs(cls, value: str) -> str:
        for part in _split_csv(value):
            key, colon, secret = part.partition(":")
            if not colon or not key.strip() or not secret.strip():
                raise ValueError("expected comma-separated key:whsec_... pairs")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'imgbatch.db').resolve()}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "images").resolve().as_uri()

    def output_csv_url(self, request_id: str) -> str:
        """Where a finished request's output CSV is downloaded (status body and webhook)."""
        return f"{self.public_url}/api/v1/requests/{request_id}/output.csv"

    def errors_csv_url(self, request_id: str) -> str:
        """Where a finished request's errors file (SPEC §4) is downloaded."""
        return f"{self.public_url}/api/v1/requests/{request_id}/errors.csv"

    @property
    def embedded(self) -> bool:
        """True when work runs in-process (no broker configured)."""
        return not self.broker_url
