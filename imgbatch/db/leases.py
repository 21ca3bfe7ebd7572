"""Leases: which runner holds which images, and when they go back to pending.

The one policy of every mode, whatever carries the chunk:

- a claim leases up to ``size`` pending images of a request to the claiming runner; a
  chunk that travels in a queue is then handed over to no one (:func:`hand_over`) and
  its lease expires at ``lease_expires_at`` if its message is lost;
- attempts are counted when a chunk *starts* (:func:`start_chunk`), so a chunk that
  kills its process is counted however it comes back (a rebuilt pool, a redelivered
  message, a reaped lease). An image that has started ``MAX_ATTEMPTS`` times is failed
  ``internal_error`` instead of being run again;
- an image that was started before and comes back in a chunk of several runs alone
  next time, so a poison image wears out only its own attempts, not its siblings';
- a runner that stops its own processes (a stop signal) hands their chunks back with
  the attempt undone (:func:`release_stopped`): no image stopped them;
- a lease is reaped when its owner is gone (``db/runners.py``), or, unowned, when it
  expired.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, update

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import ACTIVE_STATUSES, Image, ImageStatus, Request, RequestStatus
from imgbatch.db.runners import live_runner_ids
from imgbatch.db.work import Chunk, ChunkImage, ImageResult, chunk_rows, record_in
from imgbatch.errors import ErrorCode

# Starts after which an image that never finished is failed rather than crash for ever.
MAX_ATTEMPTS = 3
WORN_OUT = f"processing this image stopped a worker process {MAX_ATTEMPTS} times"


# What a lease handed back leaves: a pending image no one holds.
_UNLEASED = {
    "status": ImageStatus.PENDING,
    "lease_expires_at": None,
    "lease_owner": None,
    "claim": None,
}


def active_request_ids(
    engine: Engine, *, runner_id: str | None = None, only_own: bool = False
) -> list[str]:
    """Requests with work left that ``runner_id`` may claim, oldest first (the
    round-robin order): unpinned ones, its own, and those of a pinned runner gone; with
    ``only_own`` (an ``imgbatch run``: its allow list is its own) only those pinned to it."""
    if only_own:
        may_claim = Request.runner_id == runner_id
    else:
        may_claim = or_(
            Request.runner_id.is_(None),
            Request.runner_id.not_in(live_runner_ids()),
            *([Request.runner_id == runner_id] if runner_id else []),
        )
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(Request.id)
            .where(Request.status.in_(ACTIVE_STATUSES), may_claim)
            .order_by(Request.created_at, Request.id)
        )
        return [row[0] for row in rows]


def chunks_in_flight(engine: Engine, *, chunk_size: int) -> dict[str, int]:
    """Chunks claimed and not yet recorded, per request, wherever they run or wait."""
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(Image.request_id, func.count())
            .where(Image.status == ImageStatus.PROCESSING)
            .group_by(Image.request_id)
        ).all()
    return {request_id: math.ceil(count / chunk_size) for request_id, count in rows}


def _pending_sources(request_id: str) -> ColumnElement[bool]:
    """The images a claim may take: pending, and sources (not duplicates of another)."""
    return and_(
        Image.request_id == request_id,
        Image.status == ImageStatus.PENDING,
        Image.source_seq.is_(None),
    )


def pending_source_images(engine: Engine, *, request_id: str, up_to: int) -> int:
    """Pending source images of a request, counted up to ``up_to`` (a bounded read, however
    large the request)."""
    pending = select(Image.seq).where(_pending_sources(request_id)).limit(up_to).subquery()
    with read_tx(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(pending)).scalar_one())


def claim_chunk(
    engine: Engine,
    *,
    request_id: str,
    size: int,
    lease_seconds: int,
    owner: str | None = None,
) -> Chunk | None:
    """Lease pending source images of a request (SKIP LOCKED on PostgreSQL): one image
    started before and not finished, alone, or else up to ``size`` fresh ones."""
    return _claim(engine, request_id, 1, Image.attempts > 0, lease_seconds, owner) or _claim(
        engine, request_id, size, Image.attempts == 0, lease_seconds, owner
    )


def _claim(
    engine: Engine,
    request_id: str,
    size: int,
    which: ColumnElement[bool],
    lease_seconds: int,
    owner: str | None,
) -> Chunk | None:
    now = utcnow()
    claim = uuid.uuid4().hex
    # A materialised CTE, not "IN (subquery)": PostgreSQL may run a SKIP LOCKED subquery
    # once per candidate row and so lock (and claim) more rows than the LIMIT.
    picked = (
        select(Image.seq)
        .where(_pending_sources(request_id), which)
        .order_by(Image.seq)
        .limit(size)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    with write_tx(engine) as conn:
        rows = conn.execute(
            update(Image)
            .where(Image.request_id == request_id, Image.seq == picked.c.seq)
            .values(
                status=ImageStatus.PROCESSING,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_owner=owner,
                claim=claim,
            )
            .returning(Image.seq, Image.attempts)
        ).all()
        if not rows:
            return None
        conn.execute(
            update(Request)
            .where(Request.id == request_id, Request.status == RequestStatus.PENDING)
            .values(status=RequestStatus.PROCESSING, updated_at=now)
        )
    # One fresh batch (no starts yet) or one image started before: one attempts count.
    attempts = max(attempts for _, attempts in rows)
    return Chunk(request_id, tuple(sorted(seq for seq, _ in rows)), claim, attempts)


def start_chunk(
    engine: Engine, *, chunk: Chunk, lease_seconds: int, owner: str
) -> tuple[list[ChunkImage], bool]:
    """Start a chunk in the runner ``owner``: count an attempt on each image that still
    needs work and return them, with True when this start finished the request.

    Images already finished or cancelled (a redelivered chunk) are left out; worn-out
    ones are failed; ones started before, in a chunk of several, go back to run alone.
    """
    now = utcnow()
    with write_tx(engine) as conn:
        # Locked, so what is read is what is written: without the lock, a reap committed
        # between this read and the update below left the images pending, uncounted, and
        # yet downloaded by this chunk (PostgreSQL re-checks the filter after the wait).
        rows = conn.execute(
            select(Image.seq, Image.url, Image.attempts)
            .where(chunk_rows(chunk))
            .order_by(Image.seq)
            .with_for_update()
        ).all()
        worn_out = [seq for seq, _, attempts in rows if attempts >= MAX_ATTEMPTS]
        suspects = [seq for seq, _, attempts in rows if 0 < attempts < MAX_ATTEMPTS]
        if len(rows) == 1:
            suspects = []
        run = [
            ChunkImage(seq, url)
            for seq, url, _ in sorted(rows)
            if seq not in worn_out and seq not in suspects
        ]
        if suspects:
            _to_pending(conn, Chunk(chunk.request_id, tuple(suspects), chunk.claim))
        if run:
            conn.execute(
                update(Image)
                .where(chunk_rows(Chunk(chunk.request_id, tuple(i.seq for i in run), chunk.claim)))
                .values(
                    attempts=Image.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                )
            )
        failed = [
            ImageResult(seq, False, error_code=ErrorCode.INTERNAL_ERROR, error=WORN_OUT)
            for seq in worn_out
        ]
        finished = bool(failed) and record_in(
            conn, request_id=chunk.request_id, results=failed, now=now
        )
    return run, finished


def hand_over(engine: Engine, *, chunk: Chunk, owner: str, to: str | None) -> None:
    """Pass the lease of a submitted chunk from its dispatcher ``owner`` to ``to`` (None:
    a message in a queue). A chunk that started meanwhile (its start counted an attempt,
    and its runner holds it now, which may be ``owner`` itself) is left be."""
    with write_tx(engine) as conn:
        conn.execute(
            update(Image)
            .where(
                chunk_rows(chunk),
                Image.lease_owner == owner,
                Image.attempts == chunk.attempts,
            )
            .values(lease_owner=to)
        )


def release_chunk(engine: Engine, *, chunk: Chunk) -> int:
    """Hand a claimed chunk's unfinished images back to pending at once (its message
    could not be sent, its process died); returns how many went back."""
    with write_tx(engine) as conn:
        return _to_pending(conn, chunk)


def release_stopped(engine: Engine, *, chunks: list[Chunk]) -> int:
    """Hand back the chunks of processes their runner stopped itself (a stop signal, a
    shutdown): pending at once, and the attempt their start counted undone. No image
    stopped those processes, so none of them is a suspect that must run alone next time
    (a resumed ``imgbatch run`` then runs them in chunks, not one by one)."""
    with write_tx(engine) as conn:
        # Back to their count at the claim: as if never started.
        return sum(_to_pending(conn, chunk, attempts=chunk.attempts) for chunk in chunks)


def _to_pending(conn: Connection, chunk: Chunk, **also: object) -> int:
    result = conn.execute(update(Image).where(chunk_rows(chunk)).values(**_UNLEASED, **also))
    return int(result.rowcount)


def reap_leases(engine: Engine) -> int:
    """Hand back the leases of runners that are gone, and unowned leases that expired
    (a message lost with its broker). Returns how many images went back to pending."""
    active = select(Request.id).where(Request.status.in_(ACTIVE_STATUSES))
    lost = or_(
        and_(Image.lease_owner.is_(None), Image.lease_expires_at < utcnow()),
        # Explicitly owned: "NULL NOT IN (no rows)" is true in SQL.
        and_(Image.lease_owner.is_not(None), Image.lease_owner.not_in(live_runner_ids())),
    )
    with write_tx(engine) as conn:
        result = conn.execute(
            update(Image)
            .where(Image.request_id.in_(active), Image.status == ImageStatus.PROCESSING, lost)
            .values(**_UNLEASED)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)
