"""A process that runs chunks: its event loop and Workbench, kept from chunk to chunk.

Both modes run chunks in such processes, one per core: the embedded mode's local process
pool and Celery's prefork children. The whole pipeline runs there (download, compress,
store, record), so the API process stays free to answer, and no image bytes cross a
process boundary.

The loop runs in a thread of its own, so that a chunk may go on after its call returned:
:func:`run_chunk_until_settled` (the embedded pool's call) returns once no image of the
chunk waits for the network any more, and the pool then hands the process its next
chunk, whose downloads overlap the last compresses of this one. Without that, each chunk
boundary idled the core for a record, a start and a round trip to the origin.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.leases import release_chunk
from imgbatch.db.work import Chunk
from imgbatch.dispatch.settled import Settled
from imgbatch.fetch.fetcher import Fetcher
from imgbatch.pipeline import Workbench, compressor, process_chunk
from imgbatch.storage import open_storage

T = TypeVar("T")

log = logging.getLogger(__name__)


class WorkerProcess:
    """What one worker process keeps between chunks; ``runner_id`` holds its leases."""

    def __init__(self, settings: Settings, runner_id: str) -> None:
        _limit_malloc_arenas()  # before this process starts any thread
        self.runner_id = runner_id
        self._running: set[Chunk] = set()  # chunks started here and not ended
        self._ended = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="imgbatch-loop", daemon=True)
        self._thread.start()
        self.bench = self.run(self._open(settings))

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @staticmethod
    async def _open(settings: Settings) -> Workbench:
        # Built inside the loop that will run every chunk: the Fetcher's pooled client
        # belongs to the loop it first ran on.
        fetcher = Fetcher(settings)
        return Workbench(
            settings,
            make_engine(settings.effective_database_url, pool_size=2),
            fetcher,
            open_storage(settings),
            compressor(settings, may_block=fetcher.requests_written),
        )

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def run_chunk(self, chunk: Chunk) -> bool:
        """Run ``chunk`` to its end; True when it finished its request."""
        return self.run(self._chunk(chunk, settled=None))

    def run_chunk_until_settled(self, chunk: Chunk) -> Settled:
        """Run ``chunk`` until it ends or no image of it waits for the network.

        Returns its result, or None when it goes on here (its tail: compresses, stores and
        the record), with every chunk still running here. A tail that fails hands its
        images back itself; a process that dies with tails running leaves them to its
        owner (``EmbeddedRunner``), which knows them from these answers."""
        if chunk.attempts:
            # Images started before run alone (``db/leases.py``): alone in this process
            # too, so one that kills it takes no other chunk's tail with it.
            with self._ended:
                self._ended.wait_for(lambda: not self._running)
            return Settled(self.run_chunk(chunk), ())
        settled = threading.Event()
        with self._ended:
            self._running.add(chunk)
        done: Future[bool] = asyncio.run_coroutine_threadsafe(
            self._chunk(chunk, settled=settled), self.loop
        )
        done.add_done_callback(lambda _: self._end(chunk))
        done.add_done_callback(lambda _: settled.set())
        settled.wait()
        if not done.done():
            done.add_done_callback(lambda tail: _hand_back_if_failed(self, chunk, tail))
            return Settled(None, self._still_running())
        return Settled(done.result(), self._still_running())

    def _still_running(self) -> tuple[Chunk, ...]:
        with self._ended:
            return tuple(self._running)

    def _end(self, chunk: Chunk) -> None:
        with self._ended:
            self._running.discard(chunk)
            self._ended.notify_all()

    async def _chunk(self, chunk: Chunk, *, settled: threading.Event | None) -> bool:
        try:
            return await process_chunk(
                self.bench,
                chunk,
                owner=self.runner_id,
                settled=None if settled is None else settled.set,
            )
        finally:
            await asyncio.to_thread(_return_free_memory)

    def close(self) -> None:
        try:
            self.run(self.bench.fetcher.aclose())
            self.bench.storage.close()
            self.bench.engine.dispose()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


def _hand_back_if_failed(process: WorkerProcess, chunk: Chunk, tail: Future[bool]) -> None:
    """What the pool does for a chunk that raised, done here for one whose call returned."""
    if tail.cancelled() or tail.exception() is None:
        return
    log.error("a chunk of request %s failed", chunk.request_id, exc_info=tail.exception())

    def hand_back() -> None:  # a database call: not on the loop's thread
        try:
            release_chunk(process.bench.engine, chunk=chunk)
        except Exception:
            log.warning("could not hand a chunk back; it is reaped later", exc_info=True)

    threading.Thread(target=hand_back, daemon=True).start()


# glibc keeps memory freed by other threads in their own malloc arenas, and a decoded
# 8-megapixel photo is tens of MB: without these a worker held ~350 MB after large images.
_M_ARENA_MAX = -8
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: nothing to tune
    _LIBC = None


def _limit_malloc_arenas() -> None:
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 2)


def _return_free_memory() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


# The one WorkerProcess of this process, in both modes: made by start().
_process: WorkerProcess | None = None

# Worker processes yield the CPU, so a status request is answered at once while every
# core compresses (the API, or a Celery worker's main process, keeps its priority).
NICENESS = 10


def start(settings: Settings, owner: int, runner_id: str) -> None:
    """Make this process a worker process of the process ``owner``: the embedded
    pool's initializer, and Celery's ``worker_process_init`` (the owner is the worker's
    main process). Chunks it starts are leased to ``runner_id``."""
    global _process
    os.nice(NICENESS)
    threading.Thread(target=_exit_with_owner, args=(owner,), daemon=True).start()
    _process = WorkerProcess(settings, runner_id)


def stop() -> None:
    global _process
    if _process is not None:
        _process.close()
        _process = None


def _exit_with_owner(owner: int) -> None:
    """An owner killed outright (SIGKILL, OOM) cannot stop its workers, and the
    forkserver between them may outlive it; the workers must not go on using the CPU
    and the database. The leases they held are handed out again once the owner's
    heartbeat stops."""
    while True:
        time.sleep(1)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(1)


def run_chunk(chunk: Chunk) -> bool:
    """Run one chunk in this worker process; True when it finished its request."""
    assert _process is not None, "worker_process.start() did not run in this process"
    return _process.run_chunk(chunk)


def run_chunk_until_settled(chunk: Chunk) -> Settled:
    """Start one chunk in this worker process and return once its downloads are in hand
    (None: it goes on here), or it ended (its result). See ``WorkerProcess``."""
    assert _process is not None, "worker_process.start() did not run in this process"
    return _process.run_chunk_until_settled(chunk)
