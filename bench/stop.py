"""``imgbatch run`` stopped and resumed: how long a stop signal takes to end the run (and
every process it started), and what resuming saves against starting over.

600 distinct URLs, the origin adding 50 ms per response. Each round: run until a third of
the images are done, send SIGINT (or SIGTERM) to the run's process group as a terminal's
Ctrl-C does, time the exit, then resume with the same command; the last line compares the
resumed run with a ``--fresh`` run of the same file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from contextlib import closing
from pathlib import Path

from bench.common import bench_env, csv_text, distinct_urls, origin

IMAGES = 600
IMGBATCH = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "imgbatch")


def _succeeded(data: Path) -> int:
    try:
        with closing(sqlite3.connect(data / "imgbatch.db", timeout=30)) as conn:
            query = "SELECT count(*) FROM images WHERE status = 'succeeded'"
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _session_alive(session: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:
                return True
    return False


def _stop_midway(source: Path, data: Path, signum: signal.Signals) -> tuple[float, float, int]:
    """Seconds from the signal to the run's exit, to its last process gone; exit status."""
    run = subprocess.Popen(
        [IMGBATCH, "run", str(source)],
        env=bench_env(data),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while _succeeded(data) < IMAGES // 3:
        time.sleep(0.1)
    sent = time.monotonic()
    os.killpg(run.pid, signum)
    run.wait(timeout=60)
    exited = time.monotonic() - sent
    while _session_alive(run.pid):
        time.sleep(0.01)
    return exited, time.monotonic() - sent, run.returncode


def _timed_run(source: Path, data: Path, *extra: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [IMGBATCH, "run", str(source), *extra],
        env=bench_env(data),
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.monotonic() - started


def main() -> None:
    print(f"\n== stop and resume: imgbatch run, {IMAGES} URLs, origin +50 ms per response")
    with origin(delay_ms=50) as base, tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        source.write_text(csv_text([[url] for url in distinct_urls(base, IMAGES)]))
        for signum in (signal.SIGINT, signal.SIGTERM):
            data = Path(tmp) / f"data-{signum.name}"
            exited, gone, status = _stop_midway(source, data, signum)
            done = _succeeded(data)
            resumed = _timed_run(source, data)
            print(
                f"{signum.name}: exit {status} {exited:.2f} s after the signal, every process "
                f"gone after {gone:.2f} s; {done} images kept; the resumed run took "
                f"{resumed:.1f} s"
            )
        fresh = _timed_run(source, Path(tmp) / "data-SIGTERM", "--fresh")
        ratio = resumed / fresh
        print(f"the same file with --fresh: {fresh:.1f} s (resumed / fresh = {ratio:.2f})")


if __name__ == "__main__":
    main()
