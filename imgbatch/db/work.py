"""The life of work in the database: claim, record, finalise, reap, cancel, retry.

Every write here is a conditional UPDATE, so a chunk processed twice (a redelivered
message, an expired lease) never counts twice, and only one writer can move a request
to its terminal status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, case, func, select, update

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import (
    ACTIVE_STATUSES,
    Image,
    ImageStatus,
    Request,
    RequestStatus,
    WebhookStatus,
)
from imgbatch.errors import ErrorCode
from imgbatch.reuse.table import CacheRecord, remember


@dataclass(frozen=True)
class Chunk:
    """A unit of work: some source images of one request."""

    request_id: str
    seqs: tuple[int, ...]


@dataclass(frozen=True)
class ChunkImage:
    seq: int
    url: str


@dataclass(frozen=True)
class ImageResult:
    seq: int
    succeeded: bool
    input_bytes: int | None = None
    output_bytes: int | None = None
    output_key: str | None = None
    error_code: str | None = None
    error: str | None = None
    reused: bool = False  # its output came from an earlier identical input (SPEC §9)
    cache: CacheRecord | None = None  # what the re-run cache learnt from this image


def active_request_ids(engine: Engine) -> list[str]:
    """Requests with work left, oldest first (the round-robin order)."""
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(Request.id)
            .where(Request.status.in_(ACTIVE_STATUSES))
            .order_by(Request.created_at, Request.id)
        )
        return [row[0] for row in rows]


def images_in_flight(engine: Engine, *, request_id: str) -> int:
    with read_tx(engine) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(Image)
                .where(Image.request_id == request_id, Image.status == ImageStatus.PROCESSING)
            ).scalar_one()
        )


def claim_chunk(engine: Engine, *, request_id: str, size: int, lease_seconds: int) -> Chunk | None:
    """Lease up to ``size`` pending source images of a request (SKIP LOCKED on PostgreSQL)."""
    now = utcnow()
    # A materialised CTE, not "IN (subquery)": PostgreSQL may run a SKIP LOCKED subquery
    # once per candidate row and so lock (and claim) more rows than the LIMIT.
    picked = (
        select(Image.seq)
        .where(
            Image.request_id == request_id,
            Image.status == ImageStatus.PENDING,
            Image.source_seq.is_(None),
        )
        .order_by(Image.seq)
        .limit(size)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    with write_tx(engine) as conn:
        seqs = (
            conn.execute(
                update(Image)
                .where(Image.request_id == request_id, Image.seq == picked.c.seq)
                .values(
                    status=ImageStatus.PROCESSING,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=Image.attempts + 1,
                )
                .returning(Image.seq)
            )
            .scalars()
            .all()
        )
        if not seqs:
            return None
        conn.execute(
            update(Request)
            .where(Request.id == request_id, Request.status == RequestStatus.PENDING)
            .values(status=RequestStatus.PROCESSING, updated_at=now)
        )
    return Chunk(request_id, tuple(sorted(seqs)))


def release_chunk(engine: Engine, *, chunk: Chunk) -> int:
    """Hand a claimed chunk's unfinished images back to pending at once, e.g. when its
    message could not be sent; returns how many went back."""
    with write_tx(engine) as conn:
        result = conn.execute(
            update(Image)
            .where(
                Image.request_id == chunk.request_id,
                Image.seq.in_(chunk.seqs),
                Image.status == ImageStatus.PROCESSING,
            )
            .values(status=ImageStatus.PENDING, lease_expires_at=None)
        )
        return int(result.rowcount)


# A chunk whose worker process died is handed back; an image in it that has been
# claimed this many times is failed rather than crash workers for ever.
MAX_ATTEMPTS = 3


def give_up_or_release(engine: Engine, *, chunk: Chunk) -> None:
    """After a worker died mid-chunk: fail the chunk's images that have used up their
    attempts (recorded like any result), and hand the others back to pending."""
    with read_tx(engine) as conn:
        worn_out = (
            conn.execute(
                select(Image.seq).where(
                    Image.request_id == chunk.request_id,
                    Image.seq.in_(chunk.seqs),
                    Image.status == ImageStatus.PROCESSING,
                    Image.attempts >= MAX_ATTEMPTS,
                )
            )
            .scalars()
            .all()
        )
    if worn_out:
        message = f"processing this image stopped a worker process {MAX_ATTEMPTS} times"
        record_results(
            engine,
            request_id=chunk.request_id,
            results=[
                ImageResult(seq, False, error_code=ErrorCode.INTERNAL_ERROR, error=message)
                for seq in worn_out
            ],
        )
    release_chunk(engine, chunk=chunk)


def start_chunk(engine: Engine, *, chunk: Chunk, lease_seconds: int) -> list[ChunkImage]:
    """Renew the lease of a chunk's images that still need work, and return them.

    Images already finished or cancelled (a redelivered chunk) are left out.
    """
    with write_tx(engine) as conn:
        rows = conn.execute(
            update(Image)
            .where(
                Image.request_id == chunk.request_id,
                Image.seq.in_(chunk.seqs),
                Image.status == ImageStatus.PROCESSING,
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .returning(Image.seq, Image.url)
        ).all()
    return sorted((ChunkImage(seq, url) for seq, url in rows), key=lambda image: image.seq)


def record_results(engine: Engine, *, request_id: str, results: Sequence[ImageResult]) -> bool:
    """Record a chunk's results in one transaction; True when this call finished the request."""
    now = utcnow()
    succeeded = failed = reused = bytes_in = bytes_out = 0
    with write_tx(engine) as conn:
        for result in results:
            values = {
                "status": ImageStatus.SUCCEEDED if result.succeeded else ImageStatus.FAILED,
                "input_bytes": result.input_bytes,
                "output_bytes": result.output_bytes,
                "output_key": result.output_key,
                "reused": result.reused,
                "error_code": result.error_code,
                "error": result.error,
                "lease_expires_at": None,
            }
            copies = conn.execute(
                update(Image)
                .where(
                    Image.request_id == request_id,
                    Image.seq == result.seq,
                    Image.status == ImageStatus.PROCESSING,
                )
                .values(**values)
                .returning(Image.copies)
            ).scalar_one_or_none()
            if copies is None:
                continue  # already recorded, or cancelled meanwhile
            if copies:
                conn.execute(
                    update(Image)
                    .where(
                        Image.request_id == request_id,
                        Image.source_seq == result.seq,
                        Image.status == ImageStatus.PENDING,
                    )
                    .values(**values)
                )
            count = 1 + copies
            if result.succeeded:
                succeeded += count
                reused += count if result.reused else 0
                bytes_in += count * (result.input_bytes or 0)
                bytes_out += count * (result.output_bytes or 0)
            else:
                failed += count
        remember(conn, [result.cache for result in results if result.cache is not None])
        if succeeded or failed:
            conn.execute(
                update(Request)
                .where(Request.id == request_id)
                .values(
                    processed_images=Request.processed_images + succeeded,
                    failed_images=Request.failed_images + failed,
                    reused_images=Request.reused_images + reused,
                    input_bytes=Request.input_bytes + bytes_in,
                    output_bytes=Request.output_bytes + bytes_out,
                    updated_at=now,
                )
            )
        return _finalise(conn, request_id=request_id, now=now)


def _finalise(conn: Connection, *, request_id: str, now: datetime) -> bool:
    """Move a request whose images are all done to its terminal status, exactly once."""
    terminal = case(
        (Request.processed_images >= Request.total_images, RequestStatus.COMPLETED.value),
        (Request.processed_images == 0, RequestStatus.FAILED.value),
        else_=RequestStatus.COMPLETED_WITH_ERRORS.value,
    )
    won = conn.execute(
        update(Request)
        .where(
            Request.id == request_id,
            Request.status.in_(ACTIVE_STATUSES),
            Request.processed_images + Request.failed_images >= Request.total_images,
        )
        .values(status=terminal, finished_at=now, updated_at=now, **_webhook_due(now))
        .returning(Request.id)
    ).first()
    return won is not None


def _webhook_due(now: datetime) -> dict[str, object]:
    """Columns that schedule the finished-request webhook (when the request has a URL)."""
    has_url = Request.webhook_url.is_not(None)
    return {
        "webhook_status": case((has_url, WebhookStatus.PENDING.value), else_=None),
        "webhook_next_at": case((has_url, now), else_=None),
        "webhook_id": case((has_url, f"msg_{uuid.uuid4().hex}"), else_=None),
        "webhook_attempts": 0,
    }


def reap_expired_leases(engine: Engine, *, everything: bool = False) -> int:
    """Hand expired leases (or, at an embedded start, every lease) back to pending."""
    active = select(Request.id).where(Request.status.in_(ACTIVE_STATUSES))
    condition = and_(Image.request_id.in_(active), Image.status == ImageStatus.PROCESSING)
    if not everything:
        condition = and_(condition, Image.lease_expires_at < utcnow())
    with write_tx(engine) as conn:
        result = conn.execute(
            update(Image)
            .where(condition)
            .values(status=ImageStatus.PENDING, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)


def cancel_request(engine: Engine, *, request_id: str) -> bool:
    """Cancel outstanding work; True when the request was active and is now cancelled.

    Images are updated before the request row, the order every writer here follows, so
    PostgreSQL never sees two transactions wait on each other's locks.
    """
    now = utcnow()
    still_active = (
        select(Request.id)
        .where(Request.id == request_id, Request.status.in_(ACTIVE_STATUSES))
        .exists()
    )
    with write_tx(engine) as conn:
        conn.execute(
            update(Image)
            .where(
                Image.request_id == request_id,
                Image.status.in_((ImageStatus.PENDING, ImageStatus.PROCESSING)),
                still_active,
            )
            .values(status=ImageStatus.CANCELLED, lease_expires_at=None)
        )
        won = conn.execute(
            update(Request)
            .where(Request.id == request_id, Request.status.in_(ACTIVE_STATUSES))
            .values(
                status=RequestStatus.CANCELLED, finished_at=now, updated_at=now, **_webhook_due(now)
            )
            .returning(Request.id)
        ).first()
    return won is not None


def retry_request(engine: Engine, *, request_id: str) -> int:
    """Re-queue a finished request's failed images (and, if it was cancelled, its
    cancelled ones). Returns how many images went back to pending; 0 changes nothing."""
    now = utcnow()
    with write_tx(engine) as conn:
        status = conn.execute(
            select(Request.status).where(Request.id == request_id)
        ).scalar_one_or_none()
        if status is None or status in ACTIVE_STATUSES:
            return 0
        again = [ImageStatus.FAILED]
        if status == RequestStatus.CANCELLED:
            again.append(ImageStatus.CANCELLED)
        requeued = conn.execute(
            update(Image)
            .where(Image.request_id == request_id, Image.status.in_(again))
            .values(
                status=ImageStatus.PENDING,
                error_code=None,
                error=None,
                input_bytes=None,
                output_bytes=None,
                output_key=None,
            )
            .returning(Image.status)
        ).all()
        if not requeued:
            return 0
        conn.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(
                status=RequestStatus.PENDING,
                failed_images=0,  # every failed image is pending again
                finished_at=None,
                updated_at=now,
                webhook_status=None,
                webhook_next_at=None,
                webhook_id=None,
            )
        )
        return len(requeued)
