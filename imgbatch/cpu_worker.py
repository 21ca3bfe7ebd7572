"""Start-up of the compression worker processes, kept apart from the pipeline so that a
worker imports only the imaging code (not the database, HTTP or storage stacks)."""

from __future__ import annotations

import os

import imgbatch.imaging  # noqa: F401 - loaded at start, not on the first image


def start() -> None:
    """Compression saturates every core; the API and the downloads must still get the CPU
    when they need it (status latency, keeping the pool fed), so workers yield to them."""
    os.nice(5)


def ready() -> int:
    """A no-op task: submitting one per worker starts the pool before the first image."""
    return os.getpid()
