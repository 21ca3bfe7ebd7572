"""A Celery worker that starts while PostgreSQL is down (a restart of the whole
deployment, or a worker scaled up during a database failover) waits for it and then
works; it must not come up as a pool process that fails every chunk it is given."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from imgbatch.api import create_app
from tests.databases import database_outage
from tests.helpers import csv_bytes, wait_terminal, wait_until
from tests.modes import Backend
from tests.origin import Origin


def test_a_worker_started_during_a_database_outage_works_once_it_is_back(
    scaleout: Backend, photo_origin: Origin, photos: list[Path], tmp_path: Path
) -> None:
    values = {
        "data_dir": tmp_path / "data",
        "allow_private_networks": f"127.0.0.1:{photo_origin.port}",
        "fetch_retries": 0,
        "lease_seconds": 5,
        "workers": 1,
    }
    with database_outage(scaleout.database_url):
        worker = scaleout.start_worker(values)
        # Its pool process is up and finds the database refusing it.
        waiting = "cannot register this worker process yet"
        wait_until(lambda: waiting in worker.log.read_text(errors="replace"), timeout=60)
    urls = [photo_origin.url(f"/photos/{photo.name}?start=1") for photo in photos[:8]]
    rows = [(1, "SKU1", urls[:4]), (2, "SKU2", urls[4:])]
    with TestClient(create_app(scaleout.settings(values))) as client:
        created = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))})
        assert created.status_code == 202, created.text
        final = wait_terminal(client, created.json()["request_id"], timeout=90)
    assert final["status"] == "completed", (final, worker.log_tail())
    assert final["processed_images"] == 8 and final["failed_images"] == 0
    assert worker.process.poll() is None, worker.log_tail()
