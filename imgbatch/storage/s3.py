"""Output images in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, moto, ...).

Credentials come from the standard AWS chain (environment, shared files, instance role);
only the bucket, prefix, endpoint and URL mode are ours to configure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imgbatch.storage.base import CACHE_FOREVER, Storage, content_type, validate_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from imgbatch.config import Settings


UrlMode = Literal["presigned", "public"]

DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` to ``("bucket", "some/prefix/")``; the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"storage URL {url!r}: expected s3://bucket/optional/prefix")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Storage(Storage):
    failures = (BotoCoreError, ClientError)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        url_mode: UrlMode = "presigned",
        public_base_url: str | None = None,
        presign_seconds: int = 7 * 24 * 3600,
        max_attempts: int = 3,
        max_pool_connections: int = 32,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.url_mode = url_mode
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.presign_seconds = presign_seconds
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            signature_version="s3v4",
            # Custom endpoints (MinIO, moto, an IP) rarely resolve bucket subdomains.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        # One client per storage: botocore clients are thread-safe, sessions are not, so the
        # session is private to this constructor.
        self.client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=config
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        bucket, prefix = parse_s3_url(settings.effective_storage_url)
        return cls(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url,
            url_mode=settings.s3_url_mode,
            public_base_url=settings.s3_public_base_url,
            presign_seconds=settings.s3_presign_seconds,
        )

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def object_key(self, key: str) -> str:
        """The bucket key of ``key``: the prefix, then the key."""
        return self.prefix + validate_key(key)

    def _url_for(self, key: str) -> str:
        object_key = self.object_key(key)
        if self.url_mode == "presigned":
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=self.presign_seconds,
            )
        return f"{self._public_base()}/{quote(object_key)}"

    def close(self) -> None:
        self.client.close()

    def _public_base(self) -> str:
        if self.public_base_url:
            return self.public_base_url
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.bucket}"
        region = self.client.meta.region_name or "us-east-1"
        return f"https://{self.bucket}.s3.{region}.amazonaws.com"

    def _put(self, key: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType=content_type(key),
            CacheControl=CACHE_FOREVER,
        )

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.object_key(k)} for k in batch], "Quiet": True},
            )
            # DeleteObjects answers 200 even when some keys failed: those are listed.
            if errors := answer.get("Errors"):
                first = errors[0]
                raise ClientError(
                    {"Error": {"Code": first.get("Code", ""), "Message": first.get("Message", "")}},
                    "DeleteObjects",
                )

    def _keys_of(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{prefix}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"].removeprefix(self.prefix)

    def _copy(self, source: str, target: str) -> bool:
        source_key, target_key = self.object_key(source), self.object_key(target)
        try:
            if source_key == target_key:  # S3 refuses to copy an object onto itself
                self.client.head_object(Bucket=self.bucket, Key=source_key)
            else:
                # Server-side: S3 copies the bytes (and their Content-Type, Cache-Control).
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=target_key,
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def _check(self) -> None:
        # Proves the endpoint answers, the credentials work and the bucket exists.
        self.client.head_bucket(Bucket=self.bucket)

    # The one place botocore's errors are read (the base turns them into STORAGE_ERROR).

    def _explain(self, exc: Exception) -> str:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error.get("Code") or status or "error"
            message = error.get("Message")
            return f"S3 answered {code}" + (f" ({message})" if message else "")
        return super()._explain(exc)
