"""What an upload passes before it is read: the key's limits, and its ``Idempotency-Key``.

Both keep their state in the database (``db/tenants.py``), so they hold however many API
processes serve the same database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import BinaryIO

from fastapi import HTTPException

from imgbatch.config import Settings
from imgbatch.db.reads import get_request
from imgbatch.db.tenants import (
    Earlier,
    count_upload,
    earlier_upload,
    pending_images,
    reserve_upload,
    retry_after,
)
from imgbatch.runtime import Services

#: Retry-After when a key has too many images pending: about one chunk round.
PENDING_RETRY_SECONDS = 30
BLOCK = 1024 * 1024


def enforce_limits(services: Services, owner: str) -> None:
    """429 with ``Retry-After`` when the key has too many images pending or uploads too often."""
    settings: Settings = services.settings
    pending = pending_images(services.engine, owner=owner)
    if pending >= settings.max_pending_images:
        raise HTTPException(
            429,
            f"this API key has {pending} images not yet finished; the limit is "
            f"{settings.max_pending_images} (IMGBATCH_MAX_PENDING_IMAGES)",
            headers={"Retry-After": str(PENDING_RETRY_SECONDS)},
        )
    uploads, seconds_left = count_upload(services.engine, owner=owner)
    if uploads > settings.uploads_per_minute:
        raise HTTPException(
            429,
            f"this API key made {uploads} uploads this minute; the limit is "
            f"{settings.uploads_per_minute} (IMGBATCH_UPLOADS_PER_MINUTE)",
            headers={"Retry-After": retry_after(seconds_left)},
        )


def fingerprint(file: BinaryIO, fields: Mapping[str, str | None]) -> str:
    """SHA-256 of the file's bytes and the form fields that shape the request."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        digest.update(f"{name}={fields[name]!r}\n".encode())
    file.seek(0)
    while block := file.read(BLOCK):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


def earlier_request(
    services: Services, *, owner: str, key: str, fingerprint: str, request_id: str | None = None
) -> str | None:
    """The request an earlier upload with ``key`` created, to answer again; None when
    this upload goes ahead (with ``request_id``, it has claimed the key for that id).

    409 when the key was used with another file or other options, or when its first
    upload is still being stored.
    """
    if request_id is None:
        earlier = earlier_upload(services.engine, owner=owner, key=key)
    else:
        earlier = reserve_upload(
            services.engine, owner=owner, key=key, fingerprint=fingerprint, request_id=request_id
        )
    if earlier is None:
        return None
    return _replayable(services, earlier, key=key, fingerprint=fingerprint)


def _replayable(services: Services, earlier: Earlier, *, key: str, fingerprint: str) -> str:
    if earlier.fingerprint != fingerprint:
        raise HTTPException(
            409,
            f"Idempotency-Key {key!r} was used in the last 24 hours with a different file "
            "or different options",
        )
    if get_request(services.engine, request_id=earlier.request_id) is None:
        raise HTTPException(
            409,
            f"the first upload with Idempotency-Key {key!r} is still being stored",
            headers={"Retry-After": "1"},
        )
    return earlier.request_id
