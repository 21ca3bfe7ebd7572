"""Downloads told to go on whose request is not on the wire yet.

A worker's codec runs on the event loop's own thread (``pipeline.compressor``), so while it
runs nothing else on the loop does. Between a download's "is the request still active?"
and the moment its request is written, that would let a cancel slip through: the check
says go on, the codec holds the loop for 20 ms, and the request leaves after the cancel.
So the codec first waits, briefly, until every download told to go on has written its
request (aiohttp's ``on_request_headers_sent``).

A download still waiting for its connection (queued at the connector's limit, or
resolving and connecting) is not waited for: its request leaves once the connection is
up, whenever that is, codec or not, so a cancel meanwhile finds it there either way.
Waiting for it held every compress off the loop's thread for as long as one connection
took (a second, once, for a SYN the origin dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp

# The key under which an attempt travels in aiohttp's request context.
WRITTEN = "imgbatch_written"


class Attempt:
    """One download attempt from its go-ahead: counted by its ``Unwritten`` while it
    could write its request at once, until it has."""

    def __init__(self, owner: Unwritten) -> None:
        self._owner = owner
        self._counted = False
        self._written = False
        self.resume()

    def pause(self) -> None:
        """Its connection is on its way (the connector's queue, a connect): not counted."""
        if self._counted:
            self._counted = False
            self._owner._less()

    def resume(self) -> None:
        """Its connection is there: counted again until its request is written."""
        if not self._counted and not self._written:
            self._counted = True
            self._owner._more()

    def written(self) -> None:
        """Its request is on the wire, or it ended without one (idempotent)."""
        self._written = True
        self.pause()


class Unwritten:
    """Counts the attempts that are told to go on and have a connection, until their
    request is written (or they end)."""

    def __init__(self) -> None:
        self._count = 0
        self._none = asyncio.Event()
        self._none.set()

    @contextmanager
    def one(self) -> Iterator[Attempt]:
        """One attempt, from its go-ahead to its end."""
        attempt = Attempt(self)
        try:
            yield attempt
        finally:
            attempt.written()

    def _more(self) -> None:
        self._count += 1
        self._none.clear()

    def _less(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._none.set()

    async def all_written(self, timeout: float) -> bool:
        """True once no attempt waits to write its request; False after ``timeout``."""
        if self._count == 0:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._none.wait()
        except TimeoutError:
            return False
        return True


def _attempt(context: SimpleNamespace) -> Attempt | None:
    attempt = (context.trace_request_ctx or {}).get(WRITTEN)
    return attempt if isinstance(attempt, Attempt) else None


async def _connecting(_session: aiohttp.ClientSession, context: SimpleNamespace, _: Any) -> None:
    if (attempt := _attempt(context)) is not None:
        attempt.pause()


async def _connected(_session: aiohttp.ClientSession, context: SimpleNamespace, _: Any) -> None:
    if (attempt := _attempt(context)) is not None:
        attempt.resume()


async def _headers_sent(_session: aiohttp.ClientSession, context: SimpleNamespace, _: Any) -> None:
    if (attempt := _attempt(context)) is not None:
        attempt.written()


def written_trace() -> aiohttp.TraceConfig:
    """The session's hooks that tell each attempt where its request is."""
    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(_connecting)
    trace.on_connection_create_start.append(_connecting)
    trace.on_connection_queued_end.append(_connected)
    trace.on_connection_create_end.append(_connected)
    trace.on_request_headers_sent.append(_headers_sent)
    return trace
