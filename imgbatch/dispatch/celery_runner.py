"""The Celery runner: a claimed chunk travels as a message that any worker may run.

Used by ``serve`` when a broker is configured, and by each worker pool process's upkeep.
The queue absorbs any number of chunks, so only the window (``dispatch/policy.py``,
counted from the database like every mode's) bounds what one request has in flight.
While a message waits in the queue its images are leased to no one: if the broker loses
it, the lease expires and the images are handed out again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.leases import release_chunk
from imgbatch.db.work import Chunk
from imgbatch.dispatch.celery_app import create_celery, send_chunk
from imgbatch.dispatch.policy import CHUNKS_PER_PROCESS

log = logging.getLogger(__name__)


class CeleryRunner:
    lease_owner: str | None = None
    chunks_per_process = CHUNKS_PER_PROCESS  # a pool process runs each chunk to its end

    def __init__(self, engine: Engine, settings: Settings, app: Any = None) -> None:
        self.engine = engine
        self.settings = settings
        self._own_app = app is None
        self.app = create_celery(settings) if app is None else app

    def has_capacity(self) -> bool:
        return True

    def submit(self, chunk: Chunk) -> None:
        try:
            send_chunk(self.app, chunk)
        except Exception:
            # The broker is down: give the images back now rather than when their lease
            # expires, so the request resumes as soon as the broker does.
            try:
                release_chunk(self.engine, chunk=chunk)
            except Exception:
                log.warning("could not release a chunk; its lease will expire", exc_info=True)
            raise

    def close(self) -> None:
        """Drop broker connections (only those of an app this runner made)."""
        if self._own_app:
            self.app.close()
