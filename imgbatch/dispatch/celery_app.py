"""The Celery app: how a chunk travels as a message, and the broker settings.

A message only says "work on these image rows"; the database stays the source of truth.
How a chunk is neither lost nor counted twice:

- late acks and reject-on-worker-lost: a chunk whose worker process dies is delivered
  again (and its start counts an attempt, ``db/leases.py``); prefetch 1: a worker holds
  no more chunks than it runs;
- chunks are idempotent: a redelivered chunk skips finished images, and results are
  recorded by conditional UPDATEs, so a duplicate never counts twice;
- output keys are deterministic, so processing an image twice overwrites one object;
- a lost message (a broker restart) leaves its images leased to no one until the lease
  expires; a SIGKILLed worker's leases go when its heartbeat stops. Every runner's upkeep
  hands them out again.

The runner side (sending) is ``celery_runner.py``; the worker side (the task body and
the pool processes) is ``celery_worker.py``.
"""

from __future__ import annotations

import math
from typing import Any

from celery import Celery

from imgbatch.config import Settings
from imgbatch.db.work import Chunk

TASK_NAME = "imgbatch.process_chunk"


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
    """The Celery app for ``settings.broker_url`` (the worker side registers the task)."""
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
    return app


def send_chunk(app: Any, chunk: Chunk) -> None:
    """Enqueue ``chunk``; raises when the broker cannot take it."""
    app.send_task(TASK_NAME, args=(chunk.request_id, list(chunk.seqs), chunk.claim), retry=True)
