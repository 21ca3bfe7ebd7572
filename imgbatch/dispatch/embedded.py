"""The embedded runner: a chunk travels to a local worker process, one per core.

Used by ``imgbatch serve`` without a broker and by ``imgbatch run``. Each worker process
is a pool of its own (a one-process ``ProcessPoolExecutor``), as a Celery prefork child
is a process of its own: a process that dies (out of memory, a codec crash) breaks only
its own pool, and only the chunks it held go back to pending; the pool is rebuilt. The
policy (attempts, suspects run alone, worn-out images failed) is ``db/leases.py``'s.

A chunk's call returns once its downloads are in hand (``run_chunk_until_settled``), so
the process takes its next chunk while this one's tail compresses. Its tail is still
this runner's lease: the slot keeps the chunks the process may be running (each answer
says which still are), and a process found dead (a broken pool, whether or not a call
was pending) hands them all back. Handing back a chunk that already ended changes nothing
(``release_chunk`` acts on its unfinished images only).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.leases import release_chunk, release_stopped
from imgbatch.db.work import Chunk
from imgbatch.dispatch import local_pool
from imgbatch.dispatch.policy import CHUNKS_PER_PROCESS
from imgbatch.dispatch.settled import Settled

log = logging.getLogger(__name__)

# How long stopping waits for each killed worker to be gone.
STOP_SECONDS = 2.0


@dataclass
class _Slot:
    """One worker process, its calls under way, and the chunks it may still be running:
    submitted (in order), and not yet said ended by one of its answers."""

    pool: ProcessPoolExecutor
    running: int = 0
    held: list[Chunk] = field(default_factory=list)


def _still_held(held: list[Chunk], answered: Chunk, running: tuple[Chunk, ...]) -> list[Chunk]:
    """``held`` after the answer to ``answered``: the process runs its calls in order, so
    the chunks handed to it before (and with) that one have started, and are held only if
    the answer says they still run; those handed after it have not started yet."""
    if answered not in held:
        return held
    at = held.index(answered) + 1
    return [chunk for chunk in held[:at] if chunk in running] + held[at:]


class EmbeddedRunner:
    # A chunk whose downloads are in hand compresses its tail while the process runs the
    # next and has one more ready: three of a process's chunks are in flight (claimed,
    # not recorded). With a window of two per process, a request with both processes in
    # that state could claim nothing when a chunk settled, and no wake came when a tail
    # was recorded: the next poll (0.5 s) found the process idle (``bench/README.md``).
    chunks_per_process = CHUNKS_PER_PROCESS + 1

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        runner_id: str,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.runner_id = runner_id
        self.lease_owner: str | None = runner_id  # the local pool holds what it claims
        self.on_done = on_done
        self._lock = threading.Lock()
        self._stopping = False
        local_pool.start_forkserver()
        self._slots = [_Slot(self._new_pool()) for _ in range(settings.workers)]

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: forking a process that runs an event loop and threads can deadlock.
        pool = ProcessPoolExecutor(
            1,
            mp_context=local_pool.worker_context(),
            initializer=local_pool.start_worker,
            initargs=(self.settings, os.getpid(), self.runner_id),
        )
        pool.submit(local_pool.ready)  # start the process now, not on demand
        return pool

    def has_capacity(self) -> bool:
        self._replace_dead()
        with self._lock:
            return any(slot.running < CHUNKS_PER_PROCESS for slot in self._slots)

    def _replace_dead(self) -> None:
        """A process that died with no call pending (only tails): nothing else tells.
        ``_broken`` is the executor's own flag, set by its manager thread as soon as a
        process dies; there is no public way to ask."""
        with self._lock:
            dead = [
                (slot, slot.pool)
                for slot in self._slots
                if slot.running == 0 and getattr(slot.pool, "_broken", False)
            ]
        for slot, pool in dead:
            self._replace(slot, pool)

    def submit(self, chunk: Chunk) -> None:
        with self._lock:
            slot = min(self._slots, key=lambda s: s.running)
            slot.running += 1
            slot.held.append(chunk)
            pool = slot.pool
        try:
            future = pool.submit(local_pool.run_chunk_until_settled, chunk)
        except BrokenProcessPool:
            future = Future()
            future.set_exception(BrokenProcessPool("the pool was broken"))
        future.add_done_callback(lambda done: self._finished(chunk, slot, pool, done))

    def _finished(
        self, chunk: Chunk, slot: _Slot, pool: ProcessPoolExecutor, future: Future[Settled]
    ) -> None:
        if self._stopping:
            return  # its worker was stopped on purpose; the lease is resumed once we are gone
        try:
            answer = future.result()
            with self._lock:
                if slot.pool is pool:
                    slot.held = _still_held(slot.held, chunk, answer.running)
        except BrokenProcessPool:
            self._replace(slot, pool)  # hands back its held chunks, this one among them
        except Exception:
            log.exception("a chunk of request %s failed", chunk.request_id)
            self._hand_back(chunk)
        finally:
            with self._lock:
                slot.running -= 1
            if self.on_done is not None:
                self.on_done()

    def _replace(self, slot: _Slot, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if slot.pool is not pool or self._stopping:
                return  # the other chunk of the same process got here first
            log.warning("a worker process died; starting a new one")
            slot.pool = self._new_pool()
            held = slot.held
            slot.held = []
        pool.shutdown(wait=False, cancel_futures=True)
        for chunk in held:
            self._hand_back(chunk)

    def _hand_back(self, chunk: Chunk) -> None:
        # Back to pending at once; the attempt was counted when the chunk started.
        try:
            release_chunk(self.engine, chunk=chunk)
        except Exception:
            log.warning("could not hand a chunk back; it is reaped later", exc_info=True)

    def stop(self) -> None:
        """Stop at once. The chunks of processes this stop kills go back to pending with
        their attempt undone (``release_stopped``): they did not kill their process. A
        process found dead already may have died of an image: its chunks keep their
        leases, reaped once this runner is gone (its row is deleted as it stops)."""
        with self._lock:
            self._stopping = True
            slots = list(self._slots)
        by_slot = [(slot, _processes(slot.pool)) for slot in slots]
        intact = [
            slot
            for slot, of_slot in by_slot
            if not getattr(slot.pool, "_broken", False)
            and all(process.is_alive() for process in of_slot)
        ]
        for slot in slots:
            slot.pool.shutdown(wait=False, cancel_futures=True)
        processes = [process for _, of_slot in by_slot for process in of_slot]
        # Workers ignore SIGTERM (see local_pool.start_forkserver). Killing one mid-chunk loses
        # nothing: its chunks are handed back below, and output keys are deterministic.
        for process in processes:
            process.kill()
        # Reaped here, not left to the interpreter's exit handlers (which wait without end
        # for a worker that does not die).
        for process in processes:
            process.join(STOP_SECONDS)
        stopped = [chunk for slot in intact for chunk in slot.held]
        if stopped:
            try:
                release_stopped(self.engine, chunks=stopped)
            except Exception:
                log.warning("could not hand chunks back; they are reaped later", exc_info=True)


def _processes(pool: ProcessPoolExecutor) -> list[BaseProcess]:
    """The pool's worker processes. The executor has no public way to stop a running
    task, nor to list its processes: without killing them, shutting down would wait for
    the chunks under way."""
    return list((getattr(pool, "_processes", None) or {}).values())
