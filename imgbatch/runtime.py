"""Assemble a running service from settings: database, storage, and who does the work.

``serve`` and ``run`` both enter :func:`background_work`: the scheduler in this process,
and the runner it hands chunks to, a local pool of worker processes (embedded) or Celery
(with a broker). Either way the scheduler also delivers webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.migrate import upgrade
from imgbatch.db.work import reap_expired_leases
from imgbatch.dispatch.embedded import EmbeddedRunner
from imgbatch.dispatch.scheduler import Periodic, Runner, Scheduler
from imgbatch.housekeeping import Housekeeping
from imgbatch.storage import Storage, open_storage
from imgbatch.webhooks import webhook_sender

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    storage: Storage
    scheduler: Scheduler | None = None

    def wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()


def open_services(settings: Settings) -> Services:
    """Connect to the database and storage; an embedded SQLite is migrated here."""
    if settings.database_url is None:
        upgrade(settings.effective_database_url)
    return Services(settings, make_engine(settings.effective_database_url), open_storage(settings))


@asynccontextmanager
async def background_work(services: Services) -> AsyncIterator[Scheduler]:
    settings = services.settings
    async with (
        _runner(services) as runner,
        webhook_sender(services.engine, settings) as send_webhooks,
    ):
        housekeeping = Housekeeping(services.engine, services.storage, settings)
        periodic: list[Periodic] = [send_webhooks, housekeeping]
        scheduler = Scheduler(services.engine, settings, runner, periodic=periodic)
        services.scheduler = scheduler
        task = asyncio.create_task(scheduler.run_forever())
        try:
            yield scheduler
        finally:
            task.cancel()
            services.scheduler = None


@asynccontextmanager
async def _runner(services: Services) -> AsyncIterator[Runner]:
    settings = services.settings
    if not settings.embedded:
        from imgbatch.dispatch.celery_runner import CeleryRunner

        celery = CeleryRunner(services.engine, settings)
        try:
            yield celery
        finally:
            celery.close()
        return
    # Nothing else works on an embedded database: every lease left is from a past life.
    resumed = await asyncio.to_thread(reap_expired_leases, services.engine, everything=True)
    if resumed:
        log.info("resuming %d unfinished images", resumed)
    # A finished chunk frees a slot: dispatch the next one now, not at the next poll.
    runner = EmbeddedRunner(services.engine, settings, on_done=lambda *_: services.wake())
    try:
        yield runner
    finally:
        runner.stop()
