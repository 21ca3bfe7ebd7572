"""The embedded runner's side of its worker processes, without importing them.

The fork server, and the calls a pool makes into a worker, live here with standard-library
imports only: the process that owns the pool (``imgbatch run``, ``imgbatch serve``) never
downloads or compresses, so it need not import the pipeline (aiohttp, Pillow, numpy: about
0.5 s). The calls import ``worker_process`` on first use; in a worker the fork server's
preload has imported it already.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgbatch.db.work import Chunk
    from imgbatch.dispatch.settled import Settled

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def worker_context() -> multiprocessing.context.ForkServerContext:
    """forkserver, with the worker's modules imported once in the fork server: each
    worker then starts in about 50 ms of CPU instead of importing everything again
    (about 0.7 s each, measured)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["imgbatch.dispatch.preload"])
    return context


def start_forkserver() -> None:
    """Start the process the workers are forked from with SIGINT and SIGTERM ignored, a
    disposition exec keeps: a signal to the whole process group (Ctrl-C, a container's
    stop) must not kill it under the pool, which would take every worker for dead.
    The owner stops the workers itself (``EmbeddedRunner.stop``).

    Idempotent. ``imgbatch run`` starts it before its own imports (``console.main``), so
    the fork server imports the workers' modules on the other core meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal dispositions are the main thread's to change; started on demand
    worker_context()  # its preload is set before the fork server starts
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_worker(*args: Any) -> None:
    """Pool initializer. A terminal's Ctrl-C reaches the whole process group: the owner
    stops its workers itself, so they never die half-way behind its back (SIGTERM is
    ignored already, inherited from the forkserver; SIGINT the forkserver restores)."""
    from imgbatch.dispatch import worker_process

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_process.start(*args)


def ready() -> int:
    """A no-op call: one per worker starts the pool before the first chunk arrives."""
    return os.getpid()


def run_chunk_until_settled(chunk: Chunk) -> Settled:
    """``worker_process.run_chunk_until_settled`` in the worker this runs in."""
    from imgbatch.dispatch import worker_process

    return worker_process.run_chunk_until_settled(chunk)
