"""Lookups made together answered by one query: a chunk's images all ask (the re-run
cache, whether their request is still active) at the same moment, and one ``IN (…)``
read costs about what one row's read does. Each answer comes from a query that started
after its question was asked, so it is never older than an answer of its own query.

``Coalesced.get`` parks the caller; the first caller of a turn of the event loop also
schedules the flush, which runs after every other task ready in that turn has asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalesced(Generic[K, V]):
    """``get(key)`` answered by ``query(keys)`` (run in a thread) for all keys asked at once."""

    def __init__(self, query: Callable[[Sequence[K]], dict[K, V]]) -> None:
        self._query = query
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._start_flush)
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        return await future

    def _start_flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        task = asyncio.ensure_future(asyncio.to_thread(self._query, list(waiting)))
        task.add_done_callback(lambda done: _answer(waiting, done))


def _answer(
    waiting: dict[K, list[asyncio.Future[V | None]]], done: asyncio.Future[dict[K, V]]
) -> None:
    error = done.exception()
    found = {} if error is not None else done.result()
    for key, futures in waiting.items():
        for future in futures:
            if future.done():
                continue  # its caller was cancelled
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(found.get(key))
