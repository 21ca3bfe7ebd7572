"""Process a chunk: fetch -> compress -> store -> record -> maybe finalise.

This is the one unit of work every mode runs, always in a worker process (one per core,
see ``dispatch/worker_process.py``): the embedded mode's local pool and Celery's prefork
children differ only in who hands them the chunk, and ``imgbatch run`` is the embedded
mode without the HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy.exc
from sqlalchemy import Engine

from imgbatch.coalesced import Coalesced
from imgbatch.config import Settings
from imgbatch.db.leases import start_chunk
from imgbatch.db.reads import options_of
from imgbatch.db.work import (
    Chunk,
    ChunkImage,
    ImageResult,
    active_requests,
    cancelled_seqs,
    record_results,
)
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch.fetcher import Fetcher, GoOn, Stopped
from imgbatch.imaging import Compressed, compress, compress_fast, compress_with_pillow
from imgbatch.options import OutputOptions
from imgbatch.reuse.decide import Reuser
from imgbatch.storage import Storage, image_key
from imgbatch.work_metrics import ChunkTally

log = logging.getLogger(__name__)

# Images whose bytes a worker process holds at once, from the start of their body to the
# end of their compress: downloads run this far ahead of the codec, and no further, so a
# process's memory stays flat whatever the chunk size. An answer without a body (a 304,
# a fresh cached image) takes no room, so a re-run revalidates a whole chunk at once.
IMAGES_IN_HAND = 16


class Hand:
    """One image's room among the ``IMAGES_IN_HAND`` (the fetcher's ``Room``): taken
    when its body is about to be read, given back when the image is done.

    Taken only there, never before a download starts, and given back by a failed
    attempt: an image that holds room waits for nothing but the codec, so the room
    always comes free again.
    """

    def __init__(self, room: asyncio.Semaphore, on_held: Callable[[], None] | None = None) -> None:
        self._room = room
        self._held = False
        self._on_held = on_held

    async def take(self) -> None:
        if not self._held:
            await self._room.acquire()
            self._held = True
            if self._on_held is not None:
                self._on_held()

    def give_back(self) -> None:
        if self._held:
            self._room.release()
            self._held = False


# How long a compress waits for the loop to be free to hold (``compressor``) before it
# takes a thread: a request is written within a millisecond once its connection is up.
BLOCK_WAIT = 0.02

# Turns of the event loop before each compress that holds it (``compressor``): in each,
# every download whose socket became ready moves one step on. A download takes about
# eight (a slot, its request, the headers, the body's pieces, the slot handed on), so with
# one step per compress each took 50-90 ms more than the origin's own time, eight slots
# per host could not keep the codec fed, and it stood idle ~85 ms at every chunk's end.
NETWORK_TURNS = 3

# Bytes in, compressed out; the tally times the codec alone, not the wait for it.
Compress = Callable[[bytes, OutputOptions, ChunkTally], Awaitable[Compressed]]


def compressor(settings: Settings, may_block: Callable[[float], Awaitable[bool]]) -> Compress:
    """Compress in this worker process, one image at a time.

    Plain JPEGs (most inputs) take the libjpeg-turbo fast path on the event loop's own
    thread: its work is bounded (``compress_fast``) and releases the GIL, and a hand-off
    to a second thread cost more than it hid. With the codec in a thread, the two threads
    fought over the GIL on two cores: the workers spent 26-30 ms of CPU per image against
    22-24 here, and did 10-17 % fewer images a second (``bench/README.md``). Downloads
    wait meanwhile in the kernel's socket buffers, and go on between images: the loop turns
    ``NETWORK_TURNS`` times before each compress, so they keep ahead of the codec.

    Everything else goes to a thread, so a long Pillow decode or AVIF encode (seconds, for
    a big picture) never holds up the downloads and their timeouts.

    ``may_block(seconds)`` (``Fetcher.requests_written``) says when the loop may be held:
    once no download that was told to go on still has to write its request, so a cancel
    that lands meanwhile is never missed. When that takes longer than ``BLOCK_WAIT``, the
    image takes the thread instead.

    One at a time: the pool already has one process per core, and one decoded image per
    process keeps a worker's memory flat whatever the input.
    """
    max_pixels = settings.max_image_pixels
    pillow = partial(compress_with_pillow, max_pixels=max_pixels, avif_speed=settings.avif_speed)
    whole = partial(compress, max_pixels=max_pixels, avif_speed=settings.avif_speed)
    gate = asyncio.Semaphore(1)
    # The codec's own thread, not the loop's default executor: queued there, a run of
    # compresses would hold up the stores, database reads and address look-ups behind it.
    codec_thread = ThreadPoolExecutor(1, thread_name_prefix="imgbatch-codec")

    async def in_codec_thread(work: Callable[[], Compressed]) -> Compressed:
        return await asyncio.get_running_loop().run_in_executor(codec_thread, work)

    async def run(data: bytes, options: OutputOptions, tally: ChunkTally) -> Compressed:
        async with gate:
            for _ in range(NETWORK_TURNS):
                await asyncio.sleep(0)  # an empty turn costs microseconds
            with tally.timing("encode"):
                if await may_block(BLOCK_WAIT):
                    fast = compress_fast(data, options=options, max_pixels=max_pixels)
                    if fast is not None:
                        return fast
                    return await in_codec_thread(partial(pillow, data, options=options))
                return await in_codec_thread(partial(whole, data, options=options))

    return run


@dataclass
class Workbench:
    """What a process needs to run chunks; built once per process."""

    settings: Settings
    engine: Engine
    fetcher: Fetcher
    storage: Storage
    compress: Compress
    reuse: Reuser | None = None  # None: IMGBATCH_REUSE=false, every image is processed
    in_hand: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IMAGES_IN_HAND))

    def __post_init__(self) -> None:
        if self.reuse is None and self.settings.reuse:
            self.reuse = Reuser(self.engine, self.fetcher, self.storage, self.make)

    async def make(
        self, content: bytes, key: str, options: OutputOptions, go_on: GoOn, tally: ChunkTally
    ) -> int:
        """Compress ``content`` under ``options`` and store it under ``key``; the output's
        size. Raises ``Stopped`` when the request was cancelled before the store."""
        compressed = await self.compress(content, options, tally)
        if not await go_on():
            raise Stopped(key)
        with tally.timing("store"):
            await asyncio.to_thread(self.storage.put, key, compressed.data)
        return len(compressed.data)


class _Settling:
    """Calls ``settled`` once every image of a chunk holds its body or is done: from then
    on the chunk waits only for this process's codec, and its next chunk may start
    downloading (``worker_process``). Each image counts once, whichever comes first."""

    def __init__(self, images: int, settled: Callable[[], None]) -> None:
        self._left = images
        self._settled = settled

    def one(self) -> Callable[[], None]:
        counted = False

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                self._left -= 1
                if self._left == 0:
                    self._settled()

        return count


async def process_chunk(
    bench: Workbench,
    chunk: Chunk,
    *,
    owner: str,
    settled: Callable[[], None] | None = None,
) -> bool:
    """Run one chunk to the end in the runner ``owner``; True when it finished its request.
    ``settled`` is called once no image of it waits for the network any more.

    A cancel stops it: each download and each store first asks whether the request is
    still active (one primary-key read, shared by the images that ask at once), and an
    output stored while a cancel landed is deleted again once the results are recorded.
    """
    images, finished = await asyncio.to_thread(
        start_chunk,
        bench.engine,
        chunk=chunk,
        lease_seconds=bench.settings.lease_seconds,
        owner=owner,
    )
    if not images:
        return finished  # a redelivered chunk whose work is done or cancelled, or worn out
    options = await asyncio.to_thread(
        options_of, bench.engine, bench.settings, request_id=chunk.request_id
    )

    # The images that ask at once share one read, made after each of them asked.
    active = Coalesced(partial(active_requests, bench.engine))

    async def go_on() -> bool:
        try:
            return bool(await active.get(chunk.request_id))
        except sqlalchemy.exc.SQLAlchemyError:
            return True  # cannot tell now; the record is conditional, and undone if need be

    tally = ChunkTally()
    settling = _Settling(len(images), settled or (lambda: None))
    outcomes = await asyncio.gather(
        *(
            process_image(bench, chunk.request_id, image, options, go_on, tally, settling.one())
            for image in images
        )
    )
    results = [result for result in outcomes if result is not None]
    finished = await asyncio.to_thread(
        record_results, bench.engine, request_id=chunk.request_id, results=results
    )
    tally.count_results(results)
    await asyncio.to_thread(tally.save, bench.engine)
    stored = [result.seq for result in results if result.output_key]
    if stored:
        await _undo_cancelled(bench, chunk.request_id, stored, options)
    return finished


async def _undo_cancelled(
    bench: Workbench, request_id: str, stored: list[int], options: OutputOptions
) -> None:
    """Delete outputs of images cancelled between their store and the record."""
    cancelled = await asyncio.to_thread(
        cancelled_seqs, bench.engine, request_id=request_id, seqs=stored
    )
    if cancelled:
        keys = [image_key(request_id, seq, options) for seq in cancelled]
        await asyncio.to_thread(bench.storage.delete, keys)


async def process_image(
    bench: Workbench,
    request_id: str,
    image: ChunkImage,
    options: OutputOptions,
    go_on: GoOn,
    tally: ChunkTally,
    settled: Callable[[], None] = lambda: None,
) -> ImageResult | None:
    """One image's result, or None when its request was cancelled meanwhile; ``settled``
    is called once it holds its body, or is done."""
    key = image_key(request_id, image.seq, options)  # deterministic: a redo overwrites
    hand = Hand(bench.in_hand, on_held=settled)
    try:
        try:
            if bench.reuse is not None:
                return await bench.reuse.image(image, key, options, go_on, tally, hand)
            with tally.timing("fetch"):
                fetched = await bench.fetcher.fetch(image.url, go_on=go_on, room=hand)
            output_bytes = await bench.make(fetched.content, key, options, go_on, tally)
        except Stopped:
            return None
        except ImageError as error:
            return ImageResult(image.seq, False, error_code=error.code, error=error.message)
        except Exception:
            # A bug: the image fails, its siblings go on.
            log.exception("unexpected error processing %s", image.url)
            return ImageResult(
                image.seq,
                False,
                error_code=ErrorCode.INTERNAL_ERROR,
                error="an internal error stopped this image; retrying the request may help",
            )
    finally:
        hand.give_back()
        settled()
    return ImageResult(
        image.seq,
        True,
        input_bytes=len(fetched.content),
        output_bytes=output_bytes,
        output_key=key,
    )
