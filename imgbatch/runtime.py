"""Assemble a running service from settings: database, storage, and who does the work.

``serve`` and ``run`` both enter :func:`background_work`: this process becomes a runner
(a heartbeat row), its :class:`Upkeep` loop reaps and dispatches, and the chunks travel
to a local pool of worker processes (embedded) or to Celery (with a broker). The serve
process also delivers webhooks and does the housekeeping (retention, expired per-key state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.migrate import upgrade
from imgbatch.db.models import RunnerKind
from imgbatch.db.runners import Me, register_runner, unregister_runner
from imgbatch.dispatch.embedded import EmbeddedRunner
from imgbatch.dispatch.policy import Runner
from imgbatch.dispatch.upkeep import Upkeep
from imgbatch.housekeeping import Housekeeping
from imgbatch.storage import Storage, open_storage

log = logging.getLogger(__name__)

# How often serve and run dispatch without being woken, and serve looks for webhooks due.
POLL_SECONDS = 0.5


@dataclass
class Services:
    settings: Settings
    engine: Engine
    storage: Storage
    me: Me | None = None
    upkeep: Upkeep | None = None

    def wake(self) -> None:
        if self.upkeep is not None:
            self.upkeep.wake()


def open_services(settings: Settings) -> Services:
    """Connect to the database and storage; an embedded SQLite is migrated here, and
    temporary files of writes killed in a past life are swept."""
    if settings.database_url is None:
        upgrade(settings.effective_database_url)
    storage = open_storage(settings)
    storage.sweep()
    return Services(settings, make_engine(settings.effective_database_url), storage)


def become_runner(services: Services, kind: RunnerKind) -> Me:
    """Register this process as a runner (``run`` does it before it submits, to pin its
    request to itself)."""
    if services.me is None:
        processes = services.settings.workers if services.settings.embedded else 0
        services.me = register_runner(services.engine, kind=kind, processes=processes)
    return services.me


@asynccontextmanager
async def background_work(
    services: Services, kind: RunnerKind = RunnerKind.SERVE
) -> AsyncIterator[Upkeep]:
    me = await asyncio.to_thread(become_runner, services, kind)
    try:
        async with _runner(services, me) as runner:
            upkeep = Upkeep(
                services.engine, services.settings, runner, me, poll_seconds=POLL_SECONDS
            )
            services.upkeep = upkeep
            upkeep.start()
            try:
                if kind == RunnerKind.SERVE:
                    async with _service_jobs(services):
                        yield upkeep
                else:
                    yield upkeep
            finally:
                services.upkeep = None
                await asyncio.to_thread(upkeep.stop)
    finally:
        services.me = None
        try:
            await asyncio.to_thread(unregister_runner, services.engine, runner_id=me.id)
        except Exception:
            log.warning("could not unregister; this runner is taken for gone later", exc_info=True)


@asynccontextmanager
async def _runner(services: Services, me: Me) -> AsyncIterator[Runner]:
    settings = services.settings
    if not settings.embedded:
        from imgbatch.dispatch.celery_runner import CeleryRunner

        celery = CeleryRunner(services.engine, settings)
        try:
            yield celery
        finally:
            celery.close()
        return
    # A finished chunk frees a slot: dispatch the next one now, not at the next poll.
    runner = EmbeddedRunner(services.engine, settings, runner_id=me.id, on_done=services.wake)
    try:
        yield runner
    finally:
        runner.stop()


@asynccontextmanager
async def _service_jobs(services: Services) -> AsyncIterator[None]:
    """What every ``serve`` does besides dispatch, whatever the mode: deliver webhooks,
    and housekeeping (retention, expired per-key state)."""
    from imgbatch.webhooks import webhook_sender  # its HTTP client: serve's alone, not run's

    housekeeping = Housekeeping(services.engine, services.storage, services.settings)
    async with webhook_sender(services.engine, services.settings) as send:
        tasks = [
            asyncio.create_task(_every(POLL_SECONDS, send, "webhook delivery")),
            asyncio.create_task(_every(POLL_SECONDS, housekeeping, "housekeeping")),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _every(seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        try:
            await job()
        except Exception:
            # A database restart delays the job; it must not kill the loop.
            log.exception("%s round failed; retrying", name)
        await asyncio.sleep(seconds)
