"""The Celery worker side: the chunk task, and the state of each prefork pool process.

Each pool process is a runner of its own (a ``runners`` row, kind ``worker``): at
``worker_process_init`` it becomes a :mod:`worker_process` (the same one the embedded
pool uses: niced, exits with the worker's main process, one event loop and Workbench for
its life) and starts its :class:`Upkeep` (heartbeat, reaping, dispatch). A pool process
runs one chunk at a time and compresses one image at a time, while the other images of
its chunk download.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy.exc
from celery import signals
from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.models import RunnerKind
from imgbatch.db.runners import Me, register_runner, unregister_runner
from imgbatch.db.work import Chunk
from imgbatch.dispatch import worker_process
from imgbatch.dispatch.celery_app import TASK_NAME, create_celery
from imgbatch.dispatch.celery_runner import CeleryRunner
from imgbatch.dispatch.upkeep import Upkeep, beat_seconds
from imgbatch.storage import open_storage

# An outage of the database (or of a connection to it): the chunk is tried again later.
RETRY_ON: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
)

log = logging.getLogger(__name__)

_upkeep: Upkeep | None = None


def register_task(app: Any) -> None:
    def run_chunk(request_id: str, seqs: Sequence[int], claim: str | None = None) -> bool:
        chunk = Chunk(request_id, tuple(int(seq) for seq in seqs), claim)
        finished = worker_process.run_chunk(chunk)
        if _upkeep is not None:
            _upkeep.wake()  # enqueue the next chunks now rather than at the next poll
        return finished

    app.task(
        run_chunk,
        name=TASK_NAME,
        autoretry_for=RETRY_ON,
        retry_backoff=1,
        retry_backoff_max=30,
        retry_jitter=True,
        max_retries=10,  # after that the images are reaped once this lease is gone
    )


def _start_pool_process(app: Any, settings: Settings) -> None:
    global _upkeep
    owner = os.getppid()
    engine = make_engine(settings.effective_database_url, pool_size=1)
    me = _register_when_database_answers(engine, owner)
    worker_process.start(settings, owner, me.id)
    runner = CeleryRunner(engine, settings, app)
    _upkeep = Upkeep(engine, settings, runner, me, poll_seconds=beat_seconds(settings))
    _upkeep.start()


def _register_when_database_answers(engine: Engine, owner: int) -> Me:
    """Register this pool process, waiting out a database outage: Celery logs and
    swallows an error raised here, and would leave a process that fails every chunk
    it is given and runs no upkeep. Chunks sent to it wait until it is registered."""
    pause = 0.5
    while True:
        try:
            return register_runner(engine, kind=RunnerKind.WORKER, processes=1)
        except RETRY_ON as error:
            log.warning("cannot register this worker process yet (%s); retrying", error)
        if os.getppid() != owner:  # the worker died while this one waited
            os._exit(1)
        time.sleep(pause)
        pause = min(2 * pause, 5.0)


def _stop_pool_process() -> None:
    if _upkeep is not None:
        _upkeep.stop()
        try:
            unregister_runner(_upkeep.engine, runner_id=_upkeep.me.id)
        finally:
            _upkeep.engine.dispose()
    worker_process.stop()


def run_worker(settings: Settings, *, concurrency: int, loglevel: str = "INFO") -> None:
    """Run a prefork Celery worker (blocks until it shuts down)."""
    app = create_celery(settings)
    register_task(app)
    # Fail at start on a bad storage URL, not at the first chunk; the pool processes
    # forked later also inherit the storage client's imports. Orphaned temporary files
    # of killed writes go now.
    storage = open_storage(settings)
    storage.sweep()
    storage.close()
    signals.worker_process_init.connect(lambda **_: _start_pool_process(app, settings), weak=False)
    signals.worker_process_shutdown.connect(lambda **_: _stop_pool_process(), weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            f"--queues={settings.celery_queue}",
            f"--hostname=imgbatch-{os.getpid()}@%h",
            # Worker-to-worker chatter we do not use; mingle alone costs a second at start.
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
    )
