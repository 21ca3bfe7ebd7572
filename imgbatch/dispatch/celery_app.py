"""The Celery app, its one task (run :func:`process_chunk` on a chunk) and the worker.

A message only says "work on these image rows"; the database stays the source of truth.
How a chunk is neither lost nor counted twice:

- late acks and reject-on-worker-lost: a chunk whose worker process dies is delivered
  again; prefetch 1: a worker holds no more chunks than it runs;
- chunks are idempotent (``db/work.py``): a redelivered chunk skips finished images, and
  results are recorded by conditional UPDATEs, so a duplicate never counts twice;
- output keys are deterministic, so processing an image twice overwrites one object;
- a lost message (a broker restart, a SIGKILLed worker) leaves its images leased; the
  lease reaper hands them out again. Every worker runs it (:class:`Upkeep`), and so does
  ``serve``'s scheduler, so recovery needs neither.

Each prefork child builds its Workbench on its first task and keeps one asyncio loop for
its life: the Fetcher's pooled client belongs to the loop it first ran on. A child is one
of ``--concurrency`` processes (one per core by default) and compresses one image at a
time, while the other images of its chunk download.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy.exc
from celery import Celery, signals
from kombu.exceptions import OperationalError as BrokerError

from imgbatch.config import Settings
from imgbatch.db.engine import make_engine
from imgbatch.db.work import Chunk, reap_expired_leases
from imgbatch.dispatch.scheduler import dispatch_round
from imgbatch.dispatch.worker_process import WorkerProcess
from imgbatch.storage import open_storage

log = logging.getLogger(__name__)

TASK_NAME = "imgbatch.process_chunk"

# An outage of the database (or of a connection to it): the chunk is tried again later.
RETRY_ON: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
)


def longest_chunk_seconds(settings: Settings) -> int:
    """A generous bound on one chunk's run time: every download may use all its attempts
    and waits, and a chunk larger than the per-host limit downloads in rounds."""
    waits = max(30.0, settings.fetch_retry_after_cap) * settings.fetch_retries
    per_image = settings.fetch_timeout * (settings.fetch_retries + 1) + waits
    rounds = math.ceil(settings.chunk_size / settings.fetch_per_host)
    return int(per_image * rounds) + 60  # decoding, encoding and storing


def chunk_time_limit(settings: Settings) -> int:
    """Seconds after which a chunk that still runs is stuck: its process is replaced, and
    the lease reaper hands its images out again."""
    return 2 * max(longest_chunk_seconds(settings), settings.lease_seconds)


def visibility_timeout(settings: Settings) -> int:
    """Seconds Redis waits for an ack before it delivers a message again: longer than any
    chunk may run, or a running chunk would be started twice."""
    return chunk_time_limit(settings) + 60


def keep_consuming_after_failed_acks() -> None:
    """Work around a kombu Redis transport bug (5.7.0): when an ack fails because Redis went
    away, kombu still counts the message against the prefetch limit. A worker with
    prefetch 1 then never asks for another message and never notices that Redis is back:
    it stays up, idle, forever. So the message is forgotten locally whatever Redis said:
    if Redis still holds it, it comes back after the visibility timeout; if Redis lost
    it, the lease reaper hands its images out again."""
    from kombu.transport import redis, virtual

    qos: Any = redis.QoS
    if getattr(qos, "_imgbatch_forgets_failed_acks", False):
        return
    ack: Any = qos.ack
    reject: Any = qos.reject
    forget: Any = virtual.QoS.ack  # local state only: frees the prefetch slot

    def forgetting_ack(self: Any, delivery_tag: Any) -> None:
        try:
            ack(self, delivery_tag)
        except Exception:
            forget(self, delivery_tag)
            raise

    def forgetting_reject(self: Any, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            reject(self, delivery_tag, requeue)
        except Exception:
            forget(self, delivery_tag)
            raise

    qos.ack = forgetting_ack
    qos.reject = forgetting_reject
    qos._imgbatch_forgets_failed_acks = True


def create_celery(settings: Settings) -> Any:
    """The Celery app for ``settings.broker_url``, with the chunk task registered."""
    if not settings.broker_url:
        raise ValueError("IMGBATCH_BROKER_URL is not set: there is no broker to send work to")
    if settings.broker_url.startswith(("redis://", "rediss://")):
        keep_consuming_after_failed_acks()
    app = Celery("imgbatch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)},
        task_time_limit=chunk_time_limit(settings),
        # Keep trying to reach a broker that is restarting; never give up on it.
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # A task that is running when the broker goes away finishes and records its work.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_enable_remote_control=False,  # no broadcast queues: nothing here uses them
    )

    def run_chunk(request_id: str, seqs: Sequence[int]) -> bool:
        return _run_chunk(app, settings, Chunk(request_id, tuple(int(seq) for seq in seqs)))

    app.task(
        run_chunk,
        name=TASK_NAME,
        autoretry_for=RETRY_ON,
        retry_backoff=1,
        retry_backoff_max=30,
        retry_jitter=True,
        max_retries=10,  # after that the lease reaper hands the images out again
    )
    return app


def send_chunk(app: Any, chunk: Chunk) -> None:
    """Enqueue ``chunk``; raises when the broker cannot take it."""
    app.send_task(TASK_NAME, args=(chunk.request_id, list(chunk.seqs)), retry=True)


_process: WorkerProcess | None = None
_upkeep: Upkeep | None = None


def _worker_process(settings: Settings) -> WorkerProcess:
    global _process
    if _process is None or _process.pid != os.getpid():  # never reuse a parent's over fork
        _process = WorkerProcess(settings)
    return _process


def _close_worker_process(**_: object) -> None:
    if _upkeep is not None:
        _upkeep.stop()
    if _process is not None and _process.pid == os.getpid():
        _process.close()


signals.worker_process_shutdown.connect(_close_worker_process, weak=False)


def _run_chunk(app: Any, settings: Settings, chunk: Chunk) -> bool:
    process = _worker_process(settings)
    finished = process.run_chunk(chunk)
    # Enqueue the next chunks now rather than at the next poll (claims are atomic, so any
    # number of dispatchers may do this). A failure here loses nothing: a later round does it.
    try:
        dispatch_round(process.bench.engine, settings, _runner(process.bench.engine, settings, app))
    except Exception:
        log.warning("could not dispatch after a chunk; a later round will", exc_info=True)
    return finished


def _runner(engine: Any, settings: Settings, app: Any) -> Any:
    from imgbatch.dispatch.celery_runner import CeleryRunner  # it imports this module

    return CeleryRunner(engine, settings, app)


class Upkeep:
    """Every few seconds, hand expired leases back and dispatch: a lost message is
    recovered even when no API process is running.

    A thread of each pool process, never of the worker's main process: that one forks
    new pool processes, and a fork taken while another thread holds a lock (an import
    lock, say) leaves the child waiting on it forever.
    """

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.interval = max(1.0, settings.lease_seconds / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="imgbatch-upkeep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        engine = make_engine(self.settings.effective_database_url, pool_size=1)
        runner = _runner(engine, self.settings, self.app)
        try:
            while not self._stop.wait(self.interval):
                self.tick(engine, runner)
        finally:
            engine.dispose()

    def tick(self, engine: Any, runner: Any) -> None:
        try:
            reaped = reap_expired_leases(engine)
            if reaped:
                log.info("handed %d images with expired leases out again", reaped)
            dispatch_round(engine, self.settings, runner)
        except (sqlalchemy.exc.SQLAlchemyError, BrokerError, OSError) as error:
            # A database or broker outage delays work; the next tick tries again.
            log.warning("upkeep failed (%s); retrying in %.0f s", error, self.interval)
        except Exception:
            log.exception("upkeep failed; retrying in %.0f s", self.interval)


def run_worker(settings: Settings, *, concurrency: int, loglevel: str = "INFO") -> None:
    """Run a prefork Celery worker (blocks until it shuts down)."""
    app = create_celery(settings)
    # Fail at start on a bad storage URL, not at the first chunk; the pool processes
    # forked later also inherit the storage client's imports.
    open_storage(settings).close()

    def start_upkeep(**_: object) -> None:
        global _upkeep
        _upkeep = Upkeep(app, settings)
        _upkeep.start()

    signals.worker_process_init.connect(start_upkeep, weak=False)
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
