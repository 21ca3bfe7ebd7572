"""The one loop of every runner (``serve``, ``run``, each Celery pool process).

Each beat says this runner is alive, forgets runners that are gone and hands back the
leases they held (and unowned leases that expired: a message lost with its broker);
each round dispatches. ``wake()`` makes it act at once: after an upload, or when a
chunk finished and freed a slot.

It is a thread. In a Celery worker it runs in each pool process, never in the main
process: that one forks new pool processes, and a fork taken while another thread holds
a lock (an import lock, say) leaves the child waiting on it forever.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy.exc
from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db.leases import reap_leases
from imgbatch.db.models import RunnerKind
from imgbatch.db.runners import Me, forget_gone_runners, heartbeat
from imgbatch.dispatch.policy import Runner, dispatch_round

log = logging.getLogger(__name__)


def beat_seconds(settings: Settings) -> float:
    """A runner beats four times per ``lease_seconds``: it is gone after missing four."""
    return max(1.0, settings.lease_seconds / 4)


class Upkeep:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        runner: Runner,
        me: Me,
        *,
        poll_seconds: float,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.runner = runner
        self.me = me
        self.poll_seconds = poll_seconds
        self.interval = beat_seconds(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="imgbatch-upkeep", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Act now rather than at the next poll; safe from any thread."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def beat(self) -> None:
        heartbeat(self.engine, me=self.me)
        forget_gone_runners(self.engine, lease_seconds=self.settings.lease_seconds)
        reaped = reap_leases(self.engine)
        if reaped:
            log.info("handed %d images of gone runners or lost messages out again", reaped)

    def dispatch(self) -> None:
        # A run works on its own request only: another's URLs were not checked against
        # this run's allow list, and a server's uploads are the server's to do.
        only_own = self.me.kind == RunnerKind.RUN
        dispatch_round(
            self.engine, self.settings, self.runner, runner_id=self.me.id, only_own=only_own
        )

    def _loop(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if time.monotonic() >= next_beat:
                    self.beat()
                    next_beat = time.monotonic() + self.interval
                self.dispatch()
            except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
                # A database or broker outage delays work; it must not kill the loop.
                log.warning("upkeep failed (%s); retrying", error)
            except Exception:
                log.exception("upkeep failed; retrying")
            self._wake.wait(self.poll_seconds)
