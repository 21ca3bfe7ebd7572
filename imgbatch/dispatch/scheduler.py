"""Hand out chunks round-robin across active requests, and keep work from getting lost.

The scheduler only claims rows in the database and gives the claimed chunks to a runner;
the runner decides where they execute (this process, or a Celery worker). Every claim is
an atomic UPDATE, so several schedulers (API replicas, workers) may run the same round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.work import Chunk, active_request_ids, claim_chunk, reap_expired_leases

log = logging.getLogger(__name__)


class Runner(Protocol):
    #: How many chunks one request may have in flight at once.
    window: int

    def has_capacity(self) -> bool:
        """True while this runner can take another chunk now."""

    def in_flight(self, request_id: str) -> int:
        """Chunks of this request handed out and not yet finished."""

    def submit(self, chunk: Chunk) -> None:
        """Start (or enqueue) a claimed chunk."""


def dispatch_round(engine: Engine, settings: Settings, runner: Runner) -> int:
    """Claim chunks one per active request per turn, until the runner is full or no
    request has more pending work or room in its window. Returns chunks handed out.

    Requests with the fewest chunks in flight go first, so a small request submitted
    after a huge one gets the next free slot instead of waiting behind it.
    """
    handed = 0
    requests = sorted(active_request_ids(engine), key=runner.in_flight)
    while requests and runner.has_capacity():
        still_pending = []
        for request_id in requests:
            if not runner.has_capacity():
                break
            if runner.in_flight(request_id) >= runner.window:
                continue
            chunk = claim_chunk(
                engine,
                request_id=request_id,
                size=settings.chunk_size,
                lease_seconds=settings.lease_seconds,
            )
            if chunk is None:
                continue
            runner.submit(chunk)
            handed += 1
            still_pending.append(request_id)
        requests = still_pending
    return handed


Periodic = Callable[[], Awaitable[None]]


class Scheduler:
    """The background loop of ``serve`` and ``run``: dispatch, reap leases, run periodic
    jobs (webhook delivery). ``wake()`` makes it act at once, e.g. after an upload."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        runner: Runner,
        *,
        periodic: list[Periodic] | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.runner = runner
        self.periodic = periodic or []
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._reap_every = max(1.0, settings.lease_seconds / 4)

    def wake(self) -> None:
        """Act now rather than at the next poll; safe from any thread."""
        self._loop.call_soon_threadsafe(self._wake.set)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_reap = 0.0
        while True:
            self._wake.clear()
            try:
                if loop.time() >= next_reap:
                    await asyncio.to_thread(reap_expired_leases, self.engine)
                    next_reap = loop.time() + self._reap_every
                await asyncio.to_thread(dispatch_round, self.engine, self.settings, self.runner)
                for job in self.periodic:
                    await job()
            except Exception:
                # A database restart delays work; it must not kill the loop.
                log.exception("scheduler round failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
