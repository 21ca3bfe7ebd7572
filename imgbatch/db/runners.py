"""Runners: the live processes that hold leases, each with a heartbeat row.

A runner is alive while it beats. One that stopped beating for ``lease_seconds``, or
whose pid is gone on this very host, is gone: its row is deleted and the leases it held
are handed out again (``db/work.py``). So a start takes back only the work of runners
that are gone, never that of another live process sharing the database.

The pid check assumes one hostname per pid namespace (Docker gives each container its
own hostname); runners elsewhere are judged by their heartbeat alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Select, delete, func, insert, select, update

from imgbatch.db.engine import read_tx, utcnow, write_tx
from imgbatch.db.models import Runner, RunnerKind
from imgbatch.pids import pid_running

HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class Me:
    """This process as a runner."""

    id: str
    kind: RunnerKind
    processes: int
    started_at: datetime


def register_runner(engine: Engine, *, kind: RunnerKind, processes: int) -> Me:
    me = Me(str(uuid.uuid4()), kind, processes, utcnow())
    heartbeat(engine, me=me)
    return me


def heartbeat(engine: Engine, *, me: Me) -> None:
    """Say this runner is alive. A runner taken for gone (its beats were cut off by a
    database outage) comes back under the same id; its reaped work is claimed anew."""
    now = utcnow()
    with write_tx(engine) as conn:
        beat = conn.execute(update(Runner).where(Runner.id == me.id).values(heartbeat_at=now))
        if beat.rowcount:
            return
        conn.execute(
            insert(Runner).values(
                id=me.id,
                kind=me.kind,
                pid=os.getpid(),
                hostname=HOSTNAME,
                processes=me.processes,
                started_at=me.started_at,
                heartbeat_at=now,
            )
        )


def unregister_runner(engine: Engine, *, runner_id: str) -> None:
    """A clean stop: the runner is gone at once, and so are its leases."""
    with write_tx(engine) as conn:
        conn.execute(delete(Runner).where(Runner.id == runner_id))


def _stale_before(lease_seconds: int) -> datetime:
    return utcnow() - timedelta(seconds=lease_seconds)


def forget_gone_runners(engine: Engine, *, lease_seconds: int) -> int:
    """Delete the rows of runners that are gone; returns how many."""
    with read_tx(engine) as conn:
        here = conn.execute(select(Runner.id, Runner.pid).where(Runner.hostname == HOSTNAME)).all()
    dead_here = [runner_id for runner_id, pid in here if not pid_running(pid)]
    with write_tx(engine) as conn:
        stale = conn.execute(
            delete(Runner).where(Runner.heartbeat_at < _stale_before(lease_seconds))
        ).rowcount
        if dead_here:
            conn.execute(delete(Runner).where(Runner.id.in_(dead_here)))
    return int(stale) + len(dead_here)


def live_runner_ids() -> Select[tuple[str]]:
    """The ids of runners not yet forgotten (``forget_gone_runners`` runs before reaps)."""
    return select(Runner.id)


def live_processes(engine: Engine) -> int:
    """Worker processes that run chunks, summed over the live runners."""
    with read_tx(engine) as conn:
        return int(conn.execute(select(func.coalesce(func.sum(Runner.processes), 0))).scalar_one())
