"""Per-API-key state in the database, so it holds across API processes: signing secrets,
idempotency keys, upload-rate windows, and the images a key has not got back yet.

A key is known here only by its *owner*: a hash of the key (``owner_of``), the same value
``requests.owner`` holds. Without API keys the owner of idempotency keys is ``""``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import (
    ACTIVE_STATUSES,
    IdempotencyKey,
    Request,
    TenantSecret,
    UploadWindow,
)

SECRET_PREFIX = "whsec_"
IDEMPOTENCY_TTL = timedelta(hours=24)
WINDOW = timedelta(minutes=1)


def owner_of(api_key: str) -> str:
    """The stored identity of an API key: never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def stored_secret(engine: Engine, *, owner: str) -> str:
    """The key's signing secret, generated and kept at first use (the first writer wins)."""
    with read_tx(engine) as conn:
        found = conn.execute(
            select(TenantSecret.secret).where(TenantSecret.owner == owner)
        ).scalar_one_or_none()
    if found is not None:
        return found
    _insert_ignoring_conflict(
        engine, TenantSecret, {"owner": owner, "secret": new_secret(), "created_at": utcnow()}
    )
    with read_tx(engine) as conn:
        return conn.execute(
            select(TenantSecret.secret).where(TenantSecret.owner == owner)
        ).scalar_one()


# --- idempotency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Earlier:
    """An upload made earlier with the same ``Idempotency-Key``."""

    request_id: str
    fingerprint: str


def earlier_upload(engine: Engine, *, owner: str, key: str) -> Earlier | None:
    """The upload this key made within the last 24 hours, if any."""
    with read_tx(engine) as conn:
        row = conn.execute(
            select(IdempotencyKey.request_id, IdempotencyKey.fingerprint).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.key == key,
                IdempotencyKey.created_at > utcnow() - IDEMPOTENCY_TTL,
            )
        ).first()
    return Earlier(*row) if row else None


def reserve_upload(
    engine: Engine, *, owner: str, key: str, fingerprint: str, request_id: str
) -> Earlier | None:
    """Claim ``key`` for a new upload: None when claimed, else the upload that holds it
    (a concurrent retry can win the race)."""
    now = utcnow()
    with write_tx(engine) as conn:
        # An expired claim frees the key for a new upload.
        conn.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.key == key,
                IdempotencyKey.created_at <= now - IDEMPOTENCY_TTL,
            )
        )
    row = {
        "owner": owner,
        "key": key,
        "fingerprint": fingerprint,
        "request_id": request_id,
        "created_at": now,
    }
    if _insert_ignoring_conflict(engine, IdempotencyKey, row):
        return None
    return earlier_upload(engine, owner=owner, key=key)


def forget_upload(engine: Engine, *, owner: str, key: str, request_id: str) -> None:
    """Release a claim whose upload was rejected, so the key can be used again."""
    with write_tx(engine) as conn:
        conn.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.key == key,
                IdempotencyKey.request_id == request_id,
            )
        )


# --- limits --------------------------------------------------------------------------------


def pending_images(engine: Engine, *, owner: str) -> int:
    """Images of the key's unfinished requests that have no result yet."""
    left = Request.total_images - Request.processed_images - Request.failed_images
    with read_tx(engine) as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(left), 0)).where(
                    Request.owner == owner, Request.status.in_(ACTIVE_STATUSES)
                )
            ).scalar_one()
        )


def count_upload(engine: Engine, *, owner: str, now: datetime | None = None) -> tuple[int, float]:
    """Count one upload in the key's current minute: (uploads in it so far, seconds left
    in it). One atomic upsert, so concurrent API processes count every upload."""
    now = now or utcnow()
    start = now.replace(second=0, microsecond=0)
    values = {"owner": owner, "window_start": start, "uploads": 1}
    with write_tx(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement: Any = dialect.insert(UploadWindow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["owner", "window_start"],
            set_={"uploads": UploadWindow.uploads + 1},
        ).returning(UploadWindow.uploads)
        uploads = int(conn.execute(statement).scalar_one())
    return uploads, (start + WINDOW - now).total_seconds()


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


def prune_expired(engine: Engine) -> None:
    """Drop idempotency keys past 24 hours and upload windows past their minute."""
    now = utcnow()
    with write_tx(engine) as conn:
        expired = now - IDEMPOTENCY_TTL
        conn.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at <= expired))
        conn.execute(delete(UploadWindow).where(UploadWindow.window_start <= now - 2 * WINDOW))


def _insert_ignoring_conflict(engine: Engine, table: Any, row: dict[str, Any]) -> bool:
    """Insert ``row``; False when its primary key is taken already."""
    try:
        with write_tx(engine) as conn:
            conn.execute(table.__table__.insert().values(**row))
    except IntegrityError:
        return False
    return True
