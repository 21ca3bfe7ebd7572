"""Process a chunk: fetch -> compress -> store -> record -> maybe finalise.

This is the one unit of work every mode runs: the embedded scheduler awaits it in the
server's event loop, a Celery task runs it in a worker process, and ``imgbatch run`` is
the embedded mode without the HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Engine

from imgbatch import cpu_worker
from imgbatch.config import Settings
from imgbatch.db.work import Chunk, ChunkImage, ImageResult, record_results, start_chunk
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch import Fetcher
from imgbatch.imaging import Compressed, compress
from imgbatch.storage import Storage, image_key

log = logging.getLogger(__name__)

Compress = Callable[[bytes], Awaitable[Compressed]]


class ProcessCompressor:
    """Compress in a pool of worker processes (the CPU stage must use every core).

    A worker that dies (out of memory, a codec crash) breaks the whole pool; the pool is
    then rebuilt and the image tried once more, so one bad file cannot stop the service.
    """

    def __init__(self, settings: Settings) -> None:
        self._work = partial(
            compress, quality=settings.quality, max_pixels=settings.max_image_pixels
        )
        self._workers = settings.workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: forking a process that runs an event loop and threads can deadlock.
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(self._workers, mp_context=context, initializer=cpu_worker.start)
        for _ in range(self._workers):
            pool.submit(cpu_worker.ready)  # start every worker now, not on the first image
        return pool

    async def __call__(self, data: bytes) -> Compressed:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, self._work, data)
        except BrokenProcessPool:
            if self._pool is pool:
                log.warning("a compression process died; starting a new pool")
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._pool, self._work, data)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def thread_compressor(settings: Settings) -> Compress:
    """Compress in a thread: for a Celery prefork child, already one process per core."""
    work = partial(compress, quality=settings.quality, max_pixels=settings.max_image_pixels)

    async def run(data: bytes) -> Compressed:
        return await asyncio.to_thread(work, data)

    return run


@dataclass
class Workbench:
    """What a process needs to run chunks; built once per process."""

    settings: Settings
    engine: Engine
    fetcher: Fetcher
    storage: Storage
    compress: Compress


async def process_chunk(bench: Workbench, chunk: Chunk) -> bool:
    """Run one chunk to the end; True when it finished its request."""
    images = await asyncio.to_thread(
        start_chunk, bench.engine, chunk=chunk, lease_seconds=bench.settings.lease_seconds
    )
    if not images:
        return False  # a redelivered chunk whose work is already done or cancelled
    results = await asyncio.gather(
        *(process_image(bench, chunk.request_id, image) for image in images)
    )
    return await asyncio.to_thread(
        record_results, bench.engine, request_id=chunk.request_id, results=results
    )


async def process_image(bench: Workbench, request_id: str, image: ChunkImage) -> ImageResult:
    try:
        fetched = await bench.fetcher.fetch(image.url)
        compressed = await bench.compress(fetched.content)
        key = image_key(request_id, image.seq)  # deterministic: a redo overwrites
        await asyncio.to_thread(bench.storage.put, key, compressed.data)
    except ImageError as error:
        return ImageResult(image.seq, False, error_code=error.code, error=error.message)
    except Exception:
        # A bug, or a worker process that died: the image fails, its siblings go on.
        log.exception("unexpected error processing %s", image.url)
        return ImageResult(
            image.seq,
            False,
            error_code=ErrorCode.INTERNAL_ERROR,
            error="an internal error stopped this image; retrying the request may help",
        )
    return ImageResult(
        image.seq,
        True,
        input_bytes=len(fetched.content),
        output_bytes=len(compressed.data),
        output_key=key,
    )
