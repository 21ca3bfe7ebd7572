"""The life of work in the database: record, finalise, cancel, retry (claims and leases
are in ``db/leases.py``).

Every write here is a conditional UPDATE, so a chunk processed twice (a redelivered
message, an expired lease) never counts twice, and only one writer can move a request
to its terminal status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, case, select, update

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import (
    ACTIVE_STATUSES,
    Image,
    ImageStatus,
    Request,
    RequestStatus,
    WebhookStatus,
)
from imgbatch.reuse.table import CacheRecord, remember


@dataclass(frozen=True)
class Chunk:
    """A unit of work: some source images of one request."""

    request_id: str
    seqs: tuple[int, ...]
    claim: str | None = None  # the claim that leased them (None: whichever claim holds them)
    attempts: int = 0  # the starts its images had when claimed (one more once it starts)


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


def chunk_rows(chunk: Chunk) -> ColumnElement[bool]:
    """The images of ``chunk`` that are still being processed, under its claim."""
    return and_(
        Image.request_id == chunk.request_id,
        Image.seq.in_(chunk.seqs),
        Image.status == ImageStatus.PROCESSING,
        *([Image.claim == chunk.claim] if chunk.claim else []),
    )


# Built once: made per call, the statement cost more than the read (0.17 ms against
# 0.07 ms a call, measured), and it runs before each image's store.
_STATUSES = select(Request.id, Request.status).where(
    Request.id.in_(bindparam("ids", expanding=True))
)


def active_requests(engine: Engine, request_ids: Sequence[str]) -> dict[str, bool]:
    """Which of ``request_ids`` are still active: running chunks ask it (coalesced)
    before each download and store."""
    with read_tx(engine) as conn:
        rows = conn.execute(_STATUSES, {"ids": list(request_ids)}).all()
    return {request_id: status in ACTIVE_STATUSES for request_id, status in rows}


def cancelled_seqs(engine: Engine, *, request_id: str, seqs: Sequence[int]) -> list[int]:
    """Which of ``seqs`` are cancelled: their stored outputs must not stay."""
    with read_tx(engine) as conn:
        return list(
            conn.execute(
                select(Image.seq).where(
                    Image.request_id == request_id,
                    Image.seq.in_(seqs),
                    Image.status == ImageStatus.CANCELLED,
                )
            ).scalars()
        )


def record_results(engine: Engine, *, request_id: str, results: Sequence[ImageResult]) -> bool:
    """Record a chunk's results in one transaction; True when this call finished the request."""
    with write_tx(engine) as conn:
        return record_in(conn, request_id=request_id, results=results, now=utcnow())


# One statement for every image of a chunk, run as an executemany: built once, so
# SQLAlchemy compiles it once rather than once per image.
_RECORD_IMAGE = (
    update(Image)
    .where(
        Image.request_id == bindparam("b_request_id"),
        Image.seq == bindparam("b_seq"),
        Image.status == ImageStatus.PROCESSING,
    )
    .values(
        status=bindparam("b_status"),
        input_bytes=bindparam("b_input_bytes"),
        output_bytes=bindparam("b_output_bytes"),
        output_key=bindparam("b_output_key"),
        reused=bindparam("b_reused"),
        error_code=bindparam("b_error_code"),
        error=bindparam("b_error"),
        lease_expires_at=None,
        lease_owner=None,
        claim=None,
    )
)


def record_in(
    conn: Connection, *, request_id: str, results: Sequence[ImageResult], now: datetime
) -> bool:
    """:func:`record_results` inside the caller's transaction."""
    by_seq = {result.seq: result for result in results}
    # Locked in seq order (as a chunk start locks them), so what is read here is what the
    # update below changes: images already recorded or cancelled are left out.
    open_rows = (
        conn.execute(
            select(Image.seq, Image.copies)
            .where(
                Image.request_id == request_id,
                Image.seq.in_(by_seq),
                Image.status == ImageStatus.PROCESSING,
            )
            .order_by(Image.seq)
            .with_for_update()
        ).all()
        if by_seq
        else []
    )
    if open_rows:
        conn.execute(
            _RECORD_IMAGE,
            [
                {"b_request_id": request_id, "b_seq": seq}
                | {f"b_{name}": value for name, value in _result_values(by_seq[seq]).items()}
                for seq, _ in open_rows
            ],
        )
    succeeded = failed = reused = bytes_in = bytes_out = 0
    for seq, copies in open_rows:
        result = by_seq[seq]
        if copies:
            # The same URL later in the request: it gets this image's result.
            conn.execute(
                update(Image)
                .where(
                    Image.request_id == request_id,
                    Image.source_seq == seq,
                    Image.status == ImageStatus.PENDING,
                )
                .values(
                    **_result_values(result), lease_expires_at=None, lease_owner=None, claim=None
                )
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


def _result_values(result: ImageResult) -> dict[str, object]:
    """The columns a result sets on its image (and on the image's copies)."""
    return {
        "status": ImageStatus.SUCCEEDED if result.succeeded else ImageStatus.FAILED,
        "input_bytes": result.input_bytes,
        "output_bytes": result.output_bytes,
        "output_key": result.output_key,
        "reused": result.reused,
        "error_code": result.error_code,
        "error": result.error,
    }


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
        cancelled = conn.execute(
            update(Image)
            .where(
                Image.request_id == request_id,
                Image.status.in_((ImageStatus.PENDING, ImageStatus.PROCESSING)),
                still_active,
            )
            .values(
                status=ImageStatus.CANCELLED, lease_expires_at=None, lease_owner=None, claim=None
            )
        ).rowcount
        won = conn.execute(
            update(Request)
            .where(Request.id == request_id, Request.status.in_(ACTIVE_STATUSES))
            .values(
                status=RequestStatus.CANCELLED,
                cancelled_images=Request.cancelled_images + cancelled,
                finished_at=now,
                updated_at=now,
                **_webhook_due(now),
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
                attempts=0,  # a retry is a fresh start, not a suspect
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
                cancelled_images=0,  # and so is every cancelled one, when it was cancelled
                finished_at=None,
                updated_at=now,
                webhook_status=None,
                webhook_next_at=None,
                webhook_id=None,
            )
        )
        return len(requeued)
