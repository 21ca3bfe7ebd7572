"""The scheduler's periodic clean-up: retention (IMGBATCH_RETENTION_DAYS) and expired
per-key state (idempotency keys, upload-rate windows).

Every ``serve`` runs it, whatever the mode; replicas running it at once only repeat
deletes that find nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.tenants import prune_expired
from imgbatch.deletion import purge_finished
from imgbatch.storage import Storage

log = logging.getLogger(__name__)

EVERY_SECONDS = 60.0


class Housekeeping:
    """A periodic job: at most one pass every ``every`` seconds, in a thread."""

    def __init__(
        self, engine: Engine, storage: Storage, settings: Settings, *, every: float = EVERY_SECONDS
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.settings = settings
        # A short retention is checked often enough to hold roughly to it.
        if settings.retention_days:
            every = min(every, settings.retention_days * 86400 / 4)
        self.every = every
        self._next = 0.0

    async def __call__(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        await asyncio.to_thread(self.run_once)

    def run_once(self) -> int:
        """One pass; returns the requests purged."""
        prune_expired(self.engine)
        days = self.settings.retention_days
        if not days:
            return 0
        purged = purge_finished(self.engine, self.storage, timedelta(days=days))
        if purged:
            log.info("retention: deleted %d requests finished over %g days ago", purged, days)
        return purged
