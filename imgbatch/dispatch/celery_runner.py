"""The Celery runner: a claimed chunk becomes a message that any worker may run.

Used by ``serve`` when a broker is configured, and by the workers themselves after each
chunk and in their upkeep. The database, not the queue, knows what is in flight: an
image claimed and not yet recorded is ``processing``, wherever its message is. So every
dispatcher sees the same window per request, and that window is the fairness: a request
never has more than ``chunks_per_request`` chunks queued or running, so a small request
submitted after a huge one queues behind a couple of its chunks, not all of them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.work import Chunk, images_in_flight, release_chunk
from imgbatch.dispatch.celery_app import create_celery, send_chunk

log = logging.getLogger(__name__)


class CeleryRunner:
    def __init__(self, engine: Engine, settings: Settings, app: Any = None) -> None:
        self.engine = engine
        self.settings = settings
        self.window = settings.chunks_per_request
        self._own_app = app is None
        self.app = create_celery(settings) if app is None else app

    def has_capacity(self) -> bool:
        # The queue absorbs any number of chunks; the per-request window bounds them.
        return True

    def in_flight(self, request_id: str) -> int:
        images = images_in_flight(self.engine, request_id=request_id)
        return math.ceil(images / self.settings.chunk_size)

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
