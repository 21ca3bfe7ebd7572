"""Downloads told to go on whose request is not on the wire yet.

A worker's codec runs on the event loop's own thread (``pipeline.compressor``), so while it
runs nothing else on the loop does. Between a download's "is the request still active?"
and the moment its request is written, that would let a cancel slip through: the check
says go on, the codec holds the loop for 20 ms, and the request leaves after the cancel.
So the codec first waits, briefly, until every download told to go on has written its
request (aiohttp's ``on_request_headers_sent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp

# The key under which an attempt's "written" callback travels in aiohttp's request context.
WRITTEN = "imgbatch_written"


class Unwritten:
    """Counts attempts from their go-ahead until their request is written (or they end)."""

    def __init__(self) -> None:
        self._count = 0
        self._none = asyncio.Event()
        self._none.set()

    @contextmanager
    def one(self) -> Iterator[Callable[[], None]]:
        """One attempt; the callable it yields marks its request written (idempotent)."""
        counted = True
        self._count += 1
        self._none.clear()

        def written() -> None:
            nonlocal counted
            if counted:
                counted = False
                self._count -= 1
                if self._count == 0:
                    self._none.set()

        try:
            yield written
        finally:
            written()

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


async def _headers_sent(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: Any
) -> None:
    written = (context.trace_request_ctx or {}).get(WRITTEN)
    if written is not None:
        written()


def written_trace() -> aiohttp.TraceConfig:
    """The session's hook that calls an attempt's "written" callback."""
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    return trace
