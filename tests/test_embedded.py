"""The embedded mode's worker processes: a killed worker loses no image, and the pool
does not outlive the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import csv_bytes, wait_until
from tests.origin import Origin


def pool_workers() -> list[psutil.Process]:
    """This process's embedded workers: grandchildren through the forkserver."""
    me = psutil.Process()
    return [
        p
        for p in me.children(recursive=True)
        if p.ppid() != me.pid and "forkserver" in " ".join(p.cmdline())
    ]


def test_a_killed_worker_loses_no_image(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.05
    urls = [photo_origin.url(f"/photos/{photos[i % len(photos)].name}?n={i}") for i in range(60)]
    rows = [(i + 1, f"SKU{i}", urls[i * 3 : i * 3 + 3]) for i in range(20)]
    settings = Settings(
        data_dir=tmp_path,
        allow_private_networks=f"127.0.0.1:{photo_origin.port}",
        workers=2,
        chunk_size=4,
        fetch_retries=0,
    )
    with TestClient(create_app(settings)) as client:
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        request_id = body["request_id"]
        wait_until(lambda: client.get(f"/api/v1/requests/{request_id}").json()["processed_images"])
        victims = wait_until(pool_workers)
        os.kill(victims[0].pid, signal.SIGKILL)

        def finished() -> dict[str, int] | None:
            status = client.get(f"/api/v1/requests/{request_id}").json()
            return status if status["status"] not in ("pending", "processing") else None

        final = wait_until(finished, timeout=90)
        assert final["status"] == "completed"
        assert final["processed_images"] == final["total_images"] == 60
        stored = sorted((tmp_path / "images" / request_id).glob("*.jpg"))
        assert len(stored) == 60
        workers = pool_workers()
        assert workers and victims[0].pid not in {w.pid for w in workers}
    # The app has stopped: its workers are gone with it.
    deadline = time.monotonic() + 10
    while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        assert time.monotonic() < deadline, "worker processes outlived the app"
        time.sleep(0.1)
