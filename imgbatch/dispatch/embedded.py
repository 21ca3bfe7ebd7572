"""The embedded runner: chunks run as tasks in this process's event loop, compression in
a local process pool. Used by ``imgbatch serve`` without a broker and by ``imgbatch run``."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable

from imgbatch.db.work import Chunk
from imgbatch.pipeline import Workbench, process_chunk

log = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(
        self,
        bench: Workbench,
        *,
        max_chunks: int,
        on_done: Callable[[Chunk, bool], None] | None = None,
    ) -> None:
        self.bench = bench
        self.max_chunks = max_chunks
        # One request alone may use every slot; fairness comes from the dispatch order.
        self.window = max_chunks
        self.on_done = on_done
        # The scheduler claims from a worker thread; chunks finish on the loop.
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    def has_capacity(self) -> bool:
        with self._lock:
            return self._running.total() < self.max_chunks

    def in_flight(self, request_id: str) -> int:
        with self._lock:
            return self._running[request_id]

    def submit(self, chunk: Chunk) -> None:
        with self._lock:
            self._running[chunk.request_id] += 1
        self._loop.call_soon_threadsafe(self._start, chunk)

    def _start(self, chunk: Chunk) -> None:
        task = self._loop.create_task(self._run(chunk))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, chunk: Chunk) -> None:
        finished = False
        try:
            finished = await process_chunk(self.bench, chunk)
        except Exception:
            # The lease expires and the reaper hands the images out again.
            log.exception("chunk of request %s failed", chunk.request_id)
        finally:
            with self._lock:
                self._running[chunk.request_id] -= 1
                if not self._running[chunk.request_id]:
                    del self._running[chunk.request_id]
            if self.on_done is not None:
                self.on_done(chunk, finished)

    async def stop(self) -> None:
        """Abandon running chunks: their leases are handed out again at the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
