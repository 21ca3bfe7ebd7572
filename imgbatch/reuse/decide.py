"""The decision per image (SPEC §9): reuse an earlier output, or process the input anew.

    a recorded response still fresh            -> copy its output; the origin is not asked
    otherwise a conditional GET (when we hold a validator):
      304 with the validator we sent           -> copy the earlier output
    a 200 (or no validator, or the output gone): hash the bytes
      an input already processed, same options -> copy that output, without decoding
      otherwise                                -> compress and store (``make``)

Every reused image gets its own object (``Storage.copy``: a hard link or a server-side
copy), so deleting the request that first made an output never breaks a later one, and
the cache is pointed at the newest copy. A copy whose source is gone (its request was
deleted) falls through to the next step: a 304 becomes an unconditional GET, a hash hit
becomes processing.

Trust: a 304 answers for the bytes we hashed when we recorded the validator, and we only
send validators that claim byte identity (a strong ETag, a Last-Modified a second older
than its Date); a 304 naming another ETag is not believed. A 200 is always hashed, so an
origin that reuses one ETag for different bytes can only cost a decode, never give a
wrong image. An origin that answers 304 for bytes that did change cannot be caught by
any cache: that is the origin's promise, and ``IMGBATCH_REUSE=false`` opts out of it.

Within a process, images whose new bytes are being compressed right now are joined, not
compressed twice; across processes, the recording upsert keeps one row per key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from imgbatch.coalesced import Coalesced
from imgbatch.db.engine import utcnow
from imgbatch.db.work import ChunkImage, ImageResult
from imgbatch.errors import ImageError
from imgbatch.fetch.fetcher import Fetched, Fetcher, GoOn, Room
from imgbatch.options import OutputOptions
from imgbatch.reuse.freshness import CachePolicy, read_policy
from imgbatch.reuse.table import (
    CacheRecord,
    InputKey,
    Output,
    UrlEntry,
    UrlKey,
    known_outputs,
    url_entries,
)
from imgbatch.storage import Storage
from imgbatch.work_metrics import ChunkTally

log = logging.getLogger(__name__)

T = TypeVar("T")

CopyPair = tuple[str, str]  # (source key, target key)
Copied = bool | ImageError  # Storage.copy's answer, or the store failure it raised

# Compress ``content`` under the options and store it under ``key`` unless ``go_on`` says
# the request was cancelled (then raise ``Stopped``); returns the output's size in bytes.
Make = Callable[[bytes, str, OutputOptions, GoOn, ChunkTally], Awaitable[int]]


@dataclass
class Reuser:
    """Runs one image through the decision; one per worker process."""

    engine: Engine
    fetcher: Fetcher
    storage: Storage
    make: Make

    def __post_init__(self) -> None:
        self._making: dict[InputKey, asyncio.Future[tuple[str, int]]] = {}
        # A chunk's images ask at once: one query for all of them.
        self._urls: Coalesced[UrlKey, UrlEntry] = Coalesced(partial(url_entries, self.engine))
        self._inputs: Coalesced[InputKey, tuple[str, int]] = Coalesced(
            partial(known_outputs, self.engine)
        )
        # A chunk's fresh images all copy at once: one thread hop for all their links.
        self._copies: Coalesced[CopyPair, Copied] = Coalesced(self._copy_all)

    async def image(
        self,
        image: ChunkImage,
        key: str,
        options: OutputOptions,
        go_on: GoOn,
        tally: ChunkTally,
        room: Room | None = None,
    ) -> ImageResult:
        """Give ``image`` its output under ``key`` (named for the request's own ``options``,
        which also key every lookup); raises ImageError (and ``Stopped``, for a cancelled
        request) like the pipeline. ``room`` goes to every download."""
        entry = await _or_none(self._urls.get((image.url, options.key)))
        if entry is not None and entry.fresh(utcnow()):
            if await self._copy(entry.output.output_key, key, tally):
                return self._result(image, key, options, entry.policy, entry.output, reused=True)
            entry = None  # the earlier output is gone: download it afresh
        conditions = entry.policy.conditions() if entry is not None else None
        with tally.timing("fetch"):
            fetched = await self.fetcher.fetch(
                image.url, go_on=go_on, conditions=conditions, room=room
            )
        if fetched.not_modified:
            assert entry is not None  # a 304 only answers our conditions
            policy = self._policy(fetched)
            same = _same_validator(entry, fetched)
            if same and await self._copy(entry.output.output_key, key, tally):
                merged = CachePolicy(
                    store=policy.store,
                    fresh_until=policy.fresh_until,
                    etag=policy.etag or entry.policy.etag,
                    last_modified=policy.last_modified or entry.policy.last_modified,
                )
                return self._result(image, key, options, merged, entry.output, reused=True)
            # Not believed, or the output is gone: download it whole.
            with tally.timing("fetch"):
                fetched = await self.fetcher.fetch(image.url, go_on=go_on, room=room)
        return await self._downloaded(image, key, options, fetched, go_on, tally)

    async def _downloaded(
        self,
        image: ChunkImage,
        key: str,
        options: OutputOptions,
        fetched: Fetched,
        go_on: GoOn,
        tally: ChunkTally,
    ) -> ImageResult:
        policy = self._policy(fetched)
        content = fetched.content
        digest = hashlib.sha256(content).hexdigest()  # ~1 ms for a large photo
        flight = (digest, options.key)
        known = await self._known(flight)
        if known is not None and await self._copy(known[0], key, tally):
            output = Output(digest, len(content), *known)
            return self._result(image, key, options, policy, output, reused=True)
        made: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self._making[flight] = made
        try:
            size = await self.make(content, key, options, go_on, tally)
            made.set_result((key, size))
        except BaseException as exc:
            made.set_exception(exc)
            made.exception()  # retrieved: waiters make their own, nobody else need look
            raise
        finally:
            if self._making.get(flight) is made:
                del self._making[flight]
        output = Output(digest, len(content), key, size)
        return self._result(image, key, options, policy, output, reused=False)

    async def _known(self, flight: InputKey) -> tuple[str, int] | None:
        """The output of these bytes and options: being made in this process, or recorded."""
        making = self._making.get(flight)
        if making is not None:
            try:
                return await asyncio.shield(making)
            except Exception:
                return None  # its maker failed: this image tries for itself
        return await _or_none(self._inputs.get(flight))

    async def _copy(self, source: str, target: str, tally: ChunkTally) -> bool:
        with tally.timing("store"):
            if not self.storage.local_copies:  # a round trip each: run them side by side
                return await asyncio.to_thread(self.storage.copy, source, target)
            copied = await self._copies.get((source, target))
        if isinstance(copied, ImageError):
            raise copied
        return bool(copied)

    def _copy_all(self, pairs: Sequence[CopyPair]) -> dict[CopyPair, Copied]:
        """Each (source, target) copied, or the store failure it met."""
        done: dict[CopyPair, Copied] = {}
        for source, target in pairs:
            try:
                done[source, target] = self.storage.copy(source, target)
            except ImageError as error:
                done[source, target] = error
        return done

    @staticmethod
    def _policy(fetched: Fetched) -> CachePolicy:
        return read_policy(
            fetched.headers,
            requested_at=fetched.requested_at,
            received_at=fetched.received_at,
            redirected=fetched.redirected,
        )

    @staticmethod
    def _result(
        image: ChunkImage,
        key: str,
        options: OutputOptions,
        policy: CachePolicy,
        output: Output,
        *,
        reused: bool,
    ) -> ImageResult:
        newest = Output(output.input_sha256, output.input_bytes, key, output.output_bytes)
        return ImageResult(
            image.seq,
            True,
            input_bytes=output.input_bytes,
            output_bytes=output.output_bytes,
            output_key=key,
            reused=reused,
            cache=CacheRecord(image.url, options.key, policy, newest),
        )


async def _or_none(lookup: Awaitable[T | None]) -> T | None:
    """A lookup's answer, or None when the database cannot answer now: the image is then
    processed as without reuse (recording its result will meet the same database)."""
    try:
        return await lookup
    except SQLAlchemyError:
        log.warning("the re-run cache could not be read; processing anew", exc_info=True)
        return None


def _same_validator(entry: UrlEntry, answer: Fetched) -> bool:
    """A 304 that names an ETag must name exactly the strong one we sent."""
    etag = answer.headers.get("etag")
    return etag is None or etag.strip() == entry.policy.etag
