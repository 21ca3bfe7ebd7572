"""The dispatch policy of every mode: which chunks to claim, and for whom.

The policy only claims rows in the database and gives the claimed chunks to a runner;
the runner decides how a chunk travels (a local worker process, or a Celery message).
Every claim is an atomic UPDATE, so any number of dispatchers (API replicas, workers)
may run the same round.

The window is the fairness: a request never has more chunks in flight (claimed and not
yet recorded, counted from the database wherever they run or wait) than the window, so a
small request submitted after a huge one gets the next free slot instead of queueing
behind all of the huge one's chunks.
"""

from __future__ import annotations

import math
from typing import Protocol

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.leases import (
    active_request_ids,
    chunks_in_flight,
    claim_chunk,
    hand_over,
    pending_source_images,
)
from imgbatch.db.runners import live_processes
from imgbatch.db.work import Chunk

# Per worker process, one chunk running and one ready behind it: the calls a process of
# the embedded pool takes (``EmbeddedRunner.has_capacity``), and a Celery pool process's
# share of the window.
CHUNKS_PER_PROCESS = 2


class Runner(Protocol):
    #: Who holds a submitted chunk's lease until it starts: this runner (a local pool),
    #: or no one (a message in a queue: the lease then expires if the message is lost).
    #: Until it is submitted, the dispatching runner holds it, so a dispatcher that dies
    #: between the claim and the send leaves a lease that is reaped with it, not one
    #: that waits out its expiry.
    lease_owner: str | None

    #: Chunks of one process that count as in flight at once: its share of the default
    #: window. The embedded pool's process also finishes a chunk (its tail) meanwhile.
    chunks_per_process: int

    def has_capacity(self) -> bool:
        """True while this runner can take another chunk now."""

    def submit(self, chunk: Chunk) -> None:
        """Start (or enqueue) a claimed chunk."""


def window(settings: Settings, processes: int, per_process: int = CHUNKS_PER_PROCESS) -> int:
    """Chunks one request may have in flight: ``IMGBATCH_CHUNKS_PER_REQUEST``, or by
    default ``per_process`` per worker process alive (so one request alone can use every
    core)."""
    if settings.chunks_per_request is not None:
        return settings.chunks_per_request
    return max(1, per_process * processes)


def chunk_size_for(engine: Engine, settings: Settings, request_id: str, processes: int) -> int:
    """Images per chunk of this request in this round: ``IMGBATCH_CHUNK_SIZE``, or fewer
    when fewer are pending than would give every worker process a chunk, so a small
    request (or a big one's last images) is spread over every core, not two of them."""
    size = settings.chunk_size
    processes = max(1, processes)
    pending = pending_source_images(engine, request_id=request_id, up_to=size * processes)
    return max(1, min(size, math.ceil(pending / processes)))


def dispatch_round(
    engine: Engine, settings: Settings, runner: Runner, *, runner_id: str, only_own: bool = False
) -> int:
    """Claim chunks one per request per turn, until the runner is full or no request
    has pending work or room in its window. Returns chunks handed out.

    Requests with the fewest chunks in flight go first. ``runner_id`` is the dispatching
    runner: it never claims a request pinned to another live runner, and with
    ``only_own`` (``imgbatch run``) nothing but its own.
    """
    processes = live_processes(engine)
    limit = window(settings, processes, runner.chunks_per_process)
    in_flight = chunks_in_flight(engine, chunk_size=settings.chunk_size)
    sizes: dict[str, int] = {}  # per request, set at its first claim of the round
    requests = sorted(
        active_request_ids(engine, runner_id=runner_id, only_own=only_own),
        key=lambda r: in_flight.get(r, 0),
    )
    handed = 0
    while requests and runner.has_capacity():
        still_pending = []
        for request_id in requests:
            if not runner.has_capacity():
                break
            if in_flight.get(request_id, 0) >= limit:
                continue
            if request_id not in sizes:
                sizes[request_id] = chunk_size_for(engine, settings, request_id, processes)
            chunk = claim_chunk(
                engine,
                request_id=request_id,
                size=sizes[request_id],
                lease_seconds=settings.lease_seconds,
                owner=runner_id,
            )
            if chunk is None:
                continue
            runner.submit(chunk)
            if runner.lease_owner != runner_id:
                hand_over(engine, chunk=chunk, owner=runner_id, to=runner.lease_owner)
            in_flight[request_id] = in_flight.get(request_id, 0) + 1
            handed += 1
            still_pending.append(request_id)
        requests = still_pending
    return handed
