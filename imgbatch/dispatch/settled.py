"""A worker process's answer to the embedded pool, apart from both: the pool's owner
unpickles it without importing the worker's modules (``local_pool``)."""

from __future__ import annotations

from typing import NamedTuple

from imgbatch.db.work import Chunk


class Settled(NamedTuple):
    """A chunk's answer to the embedded pool: its result (None: its tail runs on), and the
    chunks this process was still running as it answered."""

    finished: bool | None
    running: tuple[Chunk, ...]
