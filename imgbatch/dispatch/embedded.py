"""The embedded runner: chunks run in a local pool of worker processes, one per core.

Used by ``imgbatch serve`` without a broker and by ``imgbatch run``. A worker process
that dies (out of memory, a codec crash) breaks the pool: the pool is rebuilt and the
chunks it held are handed back at once; an image that has crashed workers too often is
failed instead of being tried forever.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Any

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.work import Chunk, give_up_or_release
from imgbatch.dispatch import worker_process

log = logging.getLogger(__name__)

# Chunks handed to each process at once: one running, one queued so it never waits.
CHUNKS_PER_PROCESS = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long stopping waits for each killed worker to be gone.
STOP_SECONDS = 2.0


def _start_forkserver() -> None:
    """Start the process the workers are forked from with SIGINT and SIGTERM ignored, a
    disposition exec keeps: a signal to the whole process group (Ctrl-C, a container's
    stop) must not kill it under the pool, which would take every worker for dead.
    The owner stops the workers itself (:meth:`EmbeddedRunner.stop`)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal dispositions are the main thread's to change; started on demand
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        forkserver.ensure_running()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start_worker(*args: Any) -> None:
    """Pool initializer. A terminal's Ctrl-C reaches the whole process group: the owner
    stops its workers itself, so they never die half-way behind its back (SIGTERM is
    ignored already, inherited from the forkserver; SIGINT the forkserver restores)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_process.start(*args)


class EmbeddedRunner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        on_done: Callable[[Chunk, bool], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.processes = settings.workers
        self.max_chunks = self.processes * CHUNKS_PER_PROCESS
        # One request alone may use every slot; fairness comes from the dispatch order.
        self.window = self.max_chunks
        self.on_done = on_done
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._stopping = False
        _start_forkserver()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: forking a process that runs an event loop and threads can deadlock.
        pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_start_worker,
            initargs=(
                worker_process.share_of_limits(self.settings, self.processes),
                os.getpid(),
            ),
        )
        for _ in range(self.processes):
            pool.submit(worker_process.ready)  # start every worker now, not on demand
        return pool

    def has_capacity(self) -> bool:
        with self._lock:
            return self._running.total() < self.max_chunks

    def in_flight(self, request_id: str) -> int:
        with self._lock:
            return self._running[request_id]

    def submit(self, chunk: Chunk) -> None:
        with self._lock:
            self._running[chunk.request_id] += 1
            pool = self._pool
        try:
            future = pool.submit(worker_process.run_chunk, chunk)
        except BrokenProcessPool:
            future = Future()
            future.set_exception(BrokenProcessPool("the pool was broken"))
        future.add_done_callback(lambda done: self._finished(chunk, pool, done))

    def _finished(self, chunk: Chunk, pool: ProcessPoolExecutor, future: Future[bool]) -> None:
        if self._stopping:
            return  # its workers were stopped on purpose; the lease is resumed next start
        finished = False
        try:
            finished = future.result()
        except BrokenProcessPool:
            self._replace_broken(pool)
            self._hand_back(chunk)
        except Exception:
            log.exception("a chunk of request %s failed", chunk.request_id)
            self._hand_back(chunk)
        finally:
            with self._lock:
                self._running[chunk.request_id] -= 1
                if not self._running[chunk.request_id]:
                    del self._running[chunk.request_id]
            if self.on_done is not None:
                self.on_done(chunk, finished)

    def _replace_broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not pool or self._stopping:
                return  # another chunk of the same pool got here first
            log.warning("a worker process died; starting a new pool")
            self._pool = self._new_pool()
        pool.shutdown(wait=False, cancel_futures=True)

    def _hand_back(self, chunk: Chunk) -> None:
        try:
            give_up_or_release(self.engine, chunk=chunk)
        except Exception:
            log.warning("could not hand a chunk back; its lease will expire", exc_info=True)

    def stop(self) -> None:
        """Stop at once: unfinished chunks keep their leases and are handed out again at
        the next start (an embedded start resumes every lease)."""
        with self._lock:
            self._stopping = True
            pool = self._pool
        # The executor has no public way to stop a running task; without this, shutting
        # down would wait for the chunks under way.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        # Workers ignore SIGTERM (see _start_forkserver). Killing one mid-chunk loses
        # nothing: its lease is resumed, and output keys are deterministic.
        for process in processes:
            process.kill()
        # Reaped here, not left to the interpreter's exit handlers (which wait without end
        # for a worker that does not die).
        for process in processes:
            process.join(STOP_SECONDS)
