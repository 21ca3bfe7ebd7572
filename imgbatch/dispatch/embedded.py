"""The embedded runner: a chunk travels to a local worker process, one per core.

Used by ``imgbatch serve`` without a broker and by ``imgbatch run``. Each worker process
is a pool of its own (a one-process ``ProcessPoolExecutor``), as a Celery prefork child
is a process of its own: a process that dies (out of memory, a codec crash) breaks only
its own pool, and only the chunks it held go back to pending; the pool is rebuilt. The
policy (attempts, suspects run alone, worn-out images failed) is ``db/leases.py``'s.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.leases import release_chunk
from imgbatch.db.work import Chunk
from imgbatch.dispatch import worker_process
from imgbatch.dispatch.policy import CHUNKS_PER_PROCESS

log = logging.getLogger(__name__)


def worker_context() -> multiprocessing.context.ForkServerContext:
    """forkserver, with the worker's modules imported once in the fork server: each
    worker then starts in about 50 ms of CPU instead of importing everything again
    (about 0.7 s each, measured)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["imgbatch.dispatch.worker_process", "simplejpeg"])
    return context


@dataclass
class _Slot:
    """One worker process and the chunks handed to it."""

    pool: ProcessPoolExecutor
    running: int = 0


class EmbeddedRunner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        runner_id: str,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.runner_id = runner_id
        self.lease_owner: str | None = runner_id  # the local pool holds what it claims
        self.on_done = on_done
        self._lock = threading.Lock()
        self._slots = [_Slot(self._new_pool()) for _ in range(settings.workers)]

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: forking a process that runs an event loop and threads can deadlock.
        pool = ProcessPoolExecutor(
            1,
            mp_context=worker_context(),
            initializer=worker_process.start,
            initargs=(self.settings, os.getpid(), self.runner_id),
        )
        pool.submit(worker_process.ready)  # start the process now, not on demand
        return pool

    def has_capacity(self) -> bool:
        with self._lock:
            return any(slot.running < CHUNKS_PER_PROCESS for slot in self._slots)

    def submit(self, chunk: Chunk) -> None:
        with self._lock:
            slot = min(self._slots, key=lambda s: s.running)
            slot.running += 1
            pool = slot.pool
        try:
            future = pool.submit(worker_process.run_chunk, chunk)
        except BrokenProcessPool:
            future = Future()
            future.set_exception(BrokenProcessPool("the pool was broken"))
        future.add_done_callback(lambda done: self._finished(chunk, slot, pool, done))

    def _finished(
        self, chunk: Chunk, slot: _Slot, pool: ProcessPoolExecutor, future: Future[bool]
    ) -> None:
        try:
            future.result()
        except BrokenProcessPool:
            self._replace(slot, pool)
            self._hand_back(chunk)
        except Exception:
            log.exception("a chunk of request %s failed", chunk.request_id)
            self._hand_back(chunk)
        finally:
            with self._lock:
                slot.running -= 1
            if self.on_done is not None:
                self.on_done()

    def _replace(self, slot: _Slot, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if slot.pool is not pool:
                return  # the other chunk of the same process got here first
            log.warning("a worker process died; starting a new one")
            slot.pool = self._new_pool()
        pool.shutdown(wait=False, cancel_futures=True)

    def _hand_back(self, chunk: Chunk) -> None:
        # Back to pending at once; the attempt was counted when the chunk started.
        try:
            release_chunk(self.engine, chunk=chunk)
        except Exception:
            log.warning("could not hand a chunk back; it is reaped later", exc_info=True)

    def stop(self) -> None:
        """Stop at once: unfinished chunks keep their leases, handed out again once this
        runner is gone (its row is deleted as it stops)."""
        with self._lock:
            pools = [slot.pool for slot in self._slots]
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
            # The executor has no public way to stop a running task; without this,
            # shutting down would wait for the chunks under way.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
