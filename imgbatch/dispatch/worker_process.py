"""A process that runs chunks: its event loop and Workbench, kept from chunk to chunk.

Both modes run chunks in such processes, one per core: the embedded mode's local process
pool and Celery's prefork children. The whole pipeline runs there (download, compress,
store, record), so the API process stays free to answer, and no image bytes cross a
process boundary.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.work import Chunk
from imgbatch.fetch import Fetcher
from imgbatch.pipeline import Workbench, process_chunk, thread_compressor
from imgbatch.storage import open_storage

T = TypeVar("T")


class WorkerProcess:
    """What one worker process keeps between chunks; ``runner_id`` holds its leases."""

    def __init__(self, settings: Settings, runner_id: str) -> None:
        _limit_malloc_arenas()  # before this process starts any thread
        self.runner_id = runner_id
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.bench = self.run(self._open(settings))

    @staticmethod
    async def _open(settings: Settings) -> Workbench:
        # Built inside the loop that will run every chunk: the Fetcher's pooled client
        # belongs to the loop it first ran on.
        return Workbench(
            settings,
            make_engine(settings.effective_database_url, pool_size=2),
            Fetcher(settings),
            open_storage(settings),
            thread_compressor(settings),  # this process is one core's worth already
        )

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def run_chunk(self, chunk: Chunk) -> bool:
        try:
            return self.run(process_chunk(self.bench, chunk, owner=self.runner_id))
        finally:
            _return_free_memory()

    def close(self) -> None:
        try:
            self.run(self.bench.fetcher.aclose())
            self.bench.storage.close()
            self.bench.engine.dispose()
        finally:
            self.loop.close()


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


def ready() -> int:
    """A no-op task: one per worker starts the pool before the first chunk arrives."""
    return os.getpid()


def run_chunk(chunk: Chunk) -> bool:
    """Run one chunk in this worker process; True when it finished its request."""
    assert _process is not None, "worker_process.start() did not run in this process"
    return _process.run_chunk(chunk)
