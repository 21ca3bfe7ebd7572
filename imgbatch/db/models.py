"""The tables: requests, their products, their images, webhook delivery attempts,
the runners that hold leases, and the re-run cache (what each URL returned; which
inputs were already processed).

Keys are chosen for bulk ingest: a product is (request_id, position) and an image is
(request_id, seq), with ``seq`` numbering a request's images in output order (product
order, then URL order), so no generated ids have to be read back while inserting.

The same URL appearing twice in a request is fetched once: the first occurrence is the
*source*; later ones point at it with ``source_seq`` and take its result when it finishes.
``copies`` on a source counts those duplicates, so counters move by ``1 + copies``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class RequestStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RequestStatus.PENDING, RequestStatus.PROCESSING)
TERMINAL_STATUSES = tuple(s for s in RequestStatus if s not in ACTIVE_STATUSES)


class ImageStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WebhookStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite stores them without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
    }


class Request(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=RequestStatus.PENDING)
    total_products: Mapped[int] = mapped_column(Integer, default=0)
    total_images: Mapped[int] = mapped_column(Integer, default=0)
    processed_images: Mapped[int] = mapped_column(Integer, default=0)
    failed_images: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The user's header names, column order and BOM, to write the output CSV back alike.
    csv_header: Mapped[dict[str, Any]]
    input_bytes: Mapped[int] = mapped_column(Integer, default=0)
    output_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # Succeeded images whose output came from an earlier identical input (SPEC §9).
    reused_images: Mapped[int] = mapped_column(Integer, default=0)
    # Images cancelled (pending or in flight when the request was cancelled).
    cancelled_images: Mapped[int] = mapped_column(Integer, default=0)
    # The output options (SPEC §10) as ``OutputOptions`` JSON: quality, format, max_size.
    # Null on requests stored before options existed: JPEG at IMGBATCH_QUALITY, full size.
    options: Mapped[dict[str, Any] | None]
    # Who uploaded it (a hash of the API key), when API keys are configured.
    owner: Mapped[str | None] = mapped_column(String(64))
    # Set by ``imgbatch run``: input SHA-256 and options key, to resume the same command.
    resume_key: Mapped[str | None] = mapped_column(String(128))
    # The runner an ``imgbatch run`` request is pinned to: while it is alive, no other
    # runner claims its images (it has its own settings, e.g. its own allow list).
    runner_id: Mapped[str | None] = mapped_column(String(36))

    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_status: Mapped[str | None] = mapped_column(String(16))
    # Standard Webhooks message id: one per terminal event, reused by every attempt.
    webhook_id: Mapped[str | None] = mapped_column(String(64))
    webhook_next_at: Mapped[datetime | None]
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_requests_status", "status"),
        Index("ix_requests_created_at", "created_at"),
        Index("ix_requests_owner_created_at", "owner", "created_at"),
        Index("ix_requests_webhook_due", "webhook_status", "webhook_next_at"),
        Index("ix_requests_resume_key", "resume_key"),
    )


class Product(Base):
    __tablename__ = "products"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[int] = mapped_column(Integer)
    serial: Mapped[str] = mapped_column(Text)
    product_name: Mapped[str] = mapped_column(Text)
    urls_cell: Mapped[str] = mapped_column(Text)
    # The product's images are seq first_seq .. first_seq + image_count - 1.
    first_seq: Mapped[int] = mapped_column(Integer)
    image_count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),)


class Image(Base):
    __tablename__ = "images"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_position: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    source_seq: Mapped[int | None] = mapped_column(Integer)
    copies: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    input_bytes: Mapped[int | None] = mapped_column(Integer)
    output_bytes: Mapped[int | None] = mapped_column(Integer)
    output_key: Mapped[str | None] = mapped_column(Text)
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    # A processing image's lease: held by a live runner (``lease_owner``), or, while its
    # chunk travels in a queue and no one holds it, until ``lease_expires_at``.
    lease_expires_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(36))
    # The claim that leased it: a chunk (a message) acts only on images still of its claim,
    # so a stale message never takes over images claimed again since.
    claim: Mapped[str | None] = mapped_column(String(32))
    # Chunks that started on this image (counted when a chunk starts, in every mode).
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),
        # Claims: the pending sources of one request, in order (those started before, first,
        # found without reading the rest); the reaper's expired leases.
        Index("ix_images_claim", "request_id", "status", "attempts", "seq"),
        # Deleting a request keeps the outputs another request's images point at.
        Index("ix_images_output_key", "output_key"),
    )


class RunnerKind(StrEnum):
    SERVE = "serve"
    RUN = "run"
    WORKER = "worker"


class Runner(Base):
    """A live process that holds leases: ``serve``, ``run`` or a Celery pool process.

    It beats every few seconds; one that stopped beating (or whose pid is gone on this
    host) is gone, and the leases it held are handed out again.
    """

    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(255))
    # Worker processes that run chunks under it (0 for a serve that only dispatches).
    processes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36))
    webhook_id: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),
        Index("ix_webhook_attempts_request", "request_id", "id"),
    )


class TenantSecret(Base):
    """The webhook signing secret of one API key (``owner``), generated at first use."""

    __tablename__ = "tenant_secrets"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` an API key used on an upload, and what it created."""

    __tablename__ = "idempotency_keys"

    # The key's owner ("" without API keys) and the client's header value.
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the file and the form fields: the same key with another body is a 409.
    fingerprint: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),
        Index("ix_idempotency_keys_request", "request_id"),
    )


class UploadWindow(Base):
    """Uploads one API key made in one minute (IMGBATCH_UPLOADS_PER_MINUTE)."""

    __tablename__ = "upload_windows"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    uploads: Mapped[int] = mapped_column(Integer, default=0)


class MetricCounter(Base):
    """A monotonic counter the worker processes add to, read by ``/metrics``: work runs
    in other processes and on other machines, so the database sums it for every scrape."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class UrlCache(Base):
    """What a URL returned, per output options: its validators, its freshness, the hash of
    its bytes and the newest output made from them (SPEC §9; see imgbatch/reuse)."""

    __tablename__ = "url_cache"

    # SHA-256 of the URL: URLs can be longer than an index entry may be.
    url_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    options_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(String(64))
    fresh_until: Mapped[datetime | None]
    input_sha256: Mapped[str] = mapped_column(String(64))
    input_bytes: Mapped[int] = mapped_column(Integer)
    output_key: Mapped[str] = mapped_column(Text)
    output_bytes: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class InputOutput(Base):
    """Input bytes already processed, per output options, and the newest output of them."""

    __tablename__ = "input_outputs"

    input_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    options_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    output_key: Mapped[str] = mapped_column(Text)
    output_bytes: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
