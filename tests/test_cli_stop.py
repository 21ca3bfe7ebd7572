"""Stopping ``imgbatch run`` (Ctrl-C, SIGTERM) and running the same command again."""

from __future__ import annotations

import csv
import signal
import subprocess
from pathlib import Path

import pytest

from imgbatch.cli.run import resume_key
from imgbatch.config import Settings
from imgbatch.operations import submit_csv
from imgbatch.options import OutputOptions
from imgbatch.runtime import open_services
from tests.cli import (
    processes_in_session,
    query,
    run_cli,
    signal_group,
    start_cli,
    succeeded_images,
)
from tests.helpers import csv_bytes, wait_until
from tests.origin import Origin

IMAGES = 48


@pytest.fixture
def slow_origin(origin: Origin, photos: list[Path]) -> Origin:
    """One distinct URL per image, each answered after a pause, so a run takes a while."""
    for i in range(IMAGES):
        origin.serve_file(f"/p/{i}.jpg", photos[i % len(photos)])
    origin.delay = 0.25
    return origin


def _input(tmp_path: Path, origin: Origin) -> Path:
    source = tmp_path / "in.csv"
    rows = [(i + 1, f"SKU{i}", [origin.url(f"/p/{i}.jpg")]) for i in range(IMAGES)]
    source.write_bytes(csv_bytes(rows))
    return source


def _env(origin: Origin) -> dict[str, str]:
    return {
        "IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{origin.port}",
        "IMGBATCH_CHUNK_SIZE": "4",
    }


def _succeeded_paths(data: Path) -> set[str]:
    rows = query(data, "SELECT url FROM images WHERE status = 'succeeded'")
    return {"/" + url.split("/", 3)[3] for (url,) in rows}  # http://host:port/p/1.jpg


def _stop_midway(
    tmp_path: Path, origin: Origin, signum: signal.Signals
) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path / "data"
    source = _input(tmp_path, origin)
    run = start_cli(["run", str(source)], data, **_env(origin))
    try:
        wait_until(lambda: succeeded_images(data) >= 8, timeout=120)
        signal_group(run, signum)  # as a terminal's Ctrl-C reaches the whole job
        stdout, stderr = run.communicate(timeout=5)  # SPEC §7: stopped within 5 seconds
    finally:
        if run.poll() is None:
            signal_group(run, signal.SIGKILL)
            run.wait()
    # Every process it started is gone too (the session is the job's, see start_cli).
    wait_until(lambda: not processes_in_session(run.pid), timeout=2)
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr), data


def _pinned_to_pid(data: Path) -> int | None:
    """The pid of the live runner the request is pinned to, if any."""
    rows = query(
        data,
        "SELECT runners.pid FROM requests JOIN runners ON runners.id = requests.runner_id"
        " WHERE runners.kind = 'run'",
    )
    return rows[0][0] if rows else None


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_run_cleanly_and_the_same_command_resumes(
    tmp_path: Path, slow_origin: Origin, signum: signal.Signals, status: int
) -> None:
    stopped, data = _stop_midway(tmp_path, slow_origin, signum)
    assert stopped.returncode == status, stopped.stderr
    assert "Traceback" not in stopped.stderr and "Error" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: ") and "run the same command again" in last
    assert not (tmp_path / "in-output.csv").exists()

    # The images under way went back to pending with their start undone: the run stopped
    # its own processes, no image did, so none of them has to run alone when resumed.
    assert query(
        data,
        "SELECT status, attempts, count(*) FROM images WHERE status != 'succeeded'"
        " GROUP BY status, attempts",
    ) == [("pending", 0, IMAGES - succeeded_images(data))]
    done = _succeeded_paths(data)
    asked = dict(slow_origin.hits)
    [(stopped_runner,)] = query(data, "SELECT runner_id FROM requests")
    resume = start_cli(["run", str(tmp_path / "in.csv")], data, **_env(slow_origin))
    try:
        # The resumed request is pinned to the new run (a server on this data dir keeps
        # off it), not left pinned to the stopped run, which any runner may take over.
        wait_until(lambda: _pinned_to_pid(data) == resume.pid, timeout=60, interval=0.05)
        stdout, stderr = resume.communicate(timeout=120)
    finally:
        if resume.poll() is None:
            signal_group(resume, signal.SIGKILL)
            resume.wait()
    resumed = subprocess.CompletedProcess(resume.args, resume.returncode, stdout, stderr)
    assert resumed.returncode == 0, resumed.stderr
    assert query(data, "SELECT runner_id != ? FROM requests", stopped_runner) == [(1,)]
    assert "resuming request" in resumed.stderr
    assert query(data, "SELECT count(*), min(status) FROM requests") == [(1, "completed")]
    for path in done:  # the origin is not asked again for what was done
        assert slow_origin.hits[path] == asked[path], path
    rows = list(csv.reader((tmp_path / "in-output.csv").read_text().splitlines()))
    assert len(rows) == IMAGES + 1 and all(row[3] for row in rows[1:])


def test_fresh_starts_a_new_request_beside_the_unfinished_one(
    tmp_path: Path, slow_origin: Origin
) -> None:
    slow_origin.delay = 0
    data = tmp_path / "data"
    source = _input(tmp_path, slow_origin)
    # An unfinished run of the same command, as a power cut would leave it.
    settings = Settings(data_dir=data, chunk_size=4)
    services = open_services(settings)
    with source.open("rb") as file:
        key = resume_key(source, OutputOptions.defaults(settings))
        unfinished = submit_csv(services, file, resume_key=key)
    services.engine.dispose()

    fresh = run_cli(["run", str(source), "--fresh"], data, **_env(slow_origin))
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in fresh.stderr
    requests = query(data, "SELECT id, status FROM requests ORDER BY created_at")
    assert len(requests) == 2 and requests[0][0] == unfinished
    assert requests[1][1] == "completed"
    assert all(slow_origin.hits.get(f"/p/{i}.jpg") for i in range(IMAGES))
