"""Webhook deliveries in the database: claim the due ones, record every attempt.

A delivery is due when its request's ``webhook_status`` is pending and ``webhook_next_at``
has passed. A claim pushes ``webhook_next_at`` forward by a lease and counts the attempt in
one conditional UPDATE, so two schedulers (API replicas) never send the same attempt at
once, and a sender that dies mid-attempt only delays the delivery until the lease ends.
Because the schedule lives in these columns, a restart between attempts loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import Request, WebhookAttempt, WebhookStatus


@dataclass(frozen=True)
class DueWebhook:
    """One claimed attempt to deliver a request's finished event."""

    request_id: str
    webhook_id: str
    url: str
    attempt: int  # 1 for the first attempt
    status: str
    total_images: int
    processed_images: int
    failed_images: int
    finished_at: datetime
    owner: str | None = None  # whose secret signs it


def claim_due(
    engine: Engine, *, lease_seconds: float, limit: int, now: datetime | None = None
) -> list[DueWebhook]:
    """Claim up to ``limit`` due deliveries (SKIP LOCKED on PostgreSQL), oldest first."""
    now = now or utcnow()
    due = (Request.webhook_status == WebhookStatus.PENDING, Request.webhook_next_at <= now)
    # A materialised CTE for the same reason as claim_chunk: PostgreSQL must lock only
    # the rows it picked.
    picked = (
        select(Request.id)
        .where(*due)
        .order_by(Request.webhook_next_at, Request.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    # Most rounds find nothing due: a plain read then, not SQLite's write lock.
    with read_tx(engine) as conn:
        if conn.execute(select(Request.id).where(*due).limit(1)).first() is None:
            return []
    with write_tx(engine) as conn:
        rows = conn.execute(
            update(Request)
            # The due condition again: a row another claim moved meanwhile is not taken.
            .where(Request.id == picked.c.id, *due)
            .values(
                webhook_next_at=now + timedelta(seconds=lease_seconds),
                webhook_attempts=Request.webhook_attempts + 1,
            )
            .returning(
                Request.id,
                Request.webhook_id,
                Request.webhook_url,
                Request.webhook_attempts,
                Request.status,
                Request.total_images,
                Request.processed_images,
                Request.failed_images,
                Request.finished_at,
                Request.owner,
            )
        ).all()
    return [DueWebhook(*row) for row in rows]


def record_attempt(
    engine: Engine,
    *,
    delivery: DueWebhook,
    attempted_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    outcome: WebhookStatus,
    next_at: datetime | None = None,
) -> bool:
    """Log an attempt and move the delivery on: ``outcome`` pending (with ``next_at``),
    delivered or failed. False when the claim was stale (its lease ran out and another
    sender took over, or the request was retried): the log row is kept, nothing moves."""
    if outcome == WebhookStatus.PENDING and next_at is None:
        raise ValueError("a pending delivery needs the time of its next attempt")
    with write_tx(engine) as conn:
        conn.execute(
            insert(WebhookAttempt).values(
                request_id=delivery.request_id,
                webhook_id=delivery.webhook_id,
                attempted_at=attempted_at,
                duration_ms=duration_ms,
                status_code=status_code,
                error=error,
            )
        )
        moved = conn.execute(
            update(Request)
            .where(
                Request.id == delivery.request_id,
                Request.webhook_id == delivery.webhook_id,
                Request.webhook_attempts == delivery.attempt,
                Request.webhook_status == WebhookStatus.PENDING,
            )
            .values(
                webhook_status=outcome,
                webhook_next_at=next_at if outcome == WebhookStatus.PENDING else None,
            )
        )
        return bool(moved.rowcount == 1)
