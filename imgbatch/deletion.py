"""Delete finished requests with their stored images: one request (the API's and the CLI's
``delete``) or every finished request older than a retention period (``purge``).

The rows go first, in one transaction that only a finished (or cancelled) request passes;
the images follow. An image another request's row still points at (an output reused
across requests, SPEC §9) is kept, so deleting one request never breaks another's URLs.
If the store fails after the rows are gone, the leftovers are orphans, never dangling rows.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import Connection, Engine, delete, select

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import (
    TERMINAL_STATUSES,
    IdempotencyKey,
    Image,
    ImageStatus,
    Product,
    Request,
    WebhookAttempt,
)
from imgbatch.storage import Storage

log = logging.getLogger(__name__)

#: Keys checked against other requests' rows per query.
KEY_BATCH = 500
#: Requests one purge pass deletes at most; the next pass takes the rest.
PURGE_BATCH = 100


class Deletion(StrEnum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    RUNNING = "running"  # not finished yet: the API answers 409


class StillRunning(Exception):
    """The request has work left (or in flight); cancel it first."""


def delete_request(engine: Engine, storage: Storage, request_id: str) -> bool:
    """Delete a finished or cancelled request and every image it stored.

    True when it was deleted, False when no such request exists; ``StillRunning`` while
    it is pending or processing.
    """
    outcome = try_delete(engine, storage, request_id)
    if outcome is Deletion.RUNNING:
        raise StillRunning(f"request {request_id} is still running; cancel it first")
    return outcome is Deletion.DELETED


def try_delete(engine: Engine, storage: Storage, request_id: str) -> Deletion:
    """Like :func:`delete_request`, with the outcome as a value."""
    with write_tx(engine) as conn:
        status = conn.execute(
            select(Request.status).where(Request.id == request_id)
        ).scalar_one_or_none()
        if status is None:
            return Deletion.NOT_FOUND
        if status not in TERMINAL_STATUSES or _has_images_in_flight(conn, request_id):
            return Deletion.RUNNING
        removed = _delete_rows(conn, request_id)
    _delete_images(storage, request_id, removed, engine)
    return Deletion.DELETED


def purge_finished(engine: Engine, storage: Storage, older_than: timedelta) -> int:
    """Delete every finished request that finished more than ``older_than`` ago; returns
    how many were deleted."""
    cutoff = utcnow() - older_than
    deleted = 0
    while True:
        with write_tx(engine) as conn:
            ids = list(
                conn.execute(
                    select(Request.id)
                    .where(Request.status.in_(TERMINAL_STATUSES), Request.finished_at < cutoff)
                    .order_by(Request.finished_at)
                    .limit(PURGE_BATCH)
                ).scalars()
            )
        for request_id in ids:
            if try_delete(engine, storage, request_id) is Deletion.DELETED:
                deleted += 1
        if len(ids) < PURGE_BATCH:
            return deleted


def _has_images_in_flight(conn: Connection, request_id: str) -> bool:
    processing = conn.execute(
        select(Image.seq)
        .where(Image.request_id == request_id, Image.status == ImageStatus.PROCESSING)
        .limit(1)
    ).first()
    return processing is not None


def _delete_rows(conn: Connection, request_id: str) -> list[str]:
    """Delete the request's rows; returns the output keys they recorded."""
    keys = list(
        conn.execute(
            select(Image.output_key)
            .where(Image.request_id == request_id, Image.output_key.is_not(None))
            .distinct()
        ).scalars()
    )
    # Children first, then the request, in the order every writer locks them.
    for table in (Image, Product, WebhookAttempt, IdempotencyKey):
        conn.execute(delete(table).where(table.request_id == request_id))
    conn.execute(delete(Request).where(Request.id == request_id))
    return [key for key in keys if key]


def _delete_images(storage: Storage, request_id: str, keys: list[str], engine: Engine) -> None:
    # What the rows recorded, and whatever was stored under the request without a row.
    candidates = sorted(set(keys) | set(storage.keys_of(request_id)))
    doomed = _not_shared(engine, candidates)
    storage.delete(doomed)
    log.info("deleted request %s and %d stored images", request_id, len(doomed))


def _not_shared(engine: Engine, keys: list[str]) -> list[str]:
    """The keys no remaining image row points at."""
    kept: set[str] = set()
    with read_tx(engine) as conn:
        for start in range(0, len(keys), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            kept.update(
                key
                for key in conn.execute(
                    select(Image.output_key).where(Image.output_key.in_(batch)).distinct()
                ).scalars()
                if key
            )
    return [key for key in keys if key not in kept]
