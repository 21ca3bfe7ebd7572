"""Readiness and metrics: what an orchestrator and Prometheus see."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import csv_bytes


def test_readyz_reports_each_dependency(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path), work=False)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "storage": "ok"},
        }


def test_readyz_is_503_when_storage_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the image directory should be")
    settings = Settings(data_dir=tmp_path, storage_url=blocker.as_uri())
    with TestClient(create_app(settings, work=False)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["storage"].startswith("error")


def test_readyz_names_an_unreachable_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings, work=False)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["broker"].startswith("error")


def test_metrics_count_traffic_by_route_and_work_by_status(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path), work=False)) as client:
        body = csv_bytes([(1, "A", ["https://x.example/1.jpg", "https://x.example/2.jpg"])])
        request_id = client.post("/api/v1/requests", files={"file": ("a.csv", body)}).json()[
            "request_id"
        ]
        for _ in range(3):
            client.get(f"/api/v1/requests/{request_id}")
        client.get("/api/v1/requests/does-not-exist")
        text = client.get("/metrics").text
    route = 'route="/api/v1/requests/{request_id}"'
    assert f'imgbatch_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    assert f'imgbatch_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert request_id not in text  # IDs never become labels
    assert 'imgbatch_requests{status="pending"} 1.0' in text
    assert 'imgbatch_images{outcome="unfinished",request_status="pending"} 2.0' in text
    assert "imgbatch_http_request_seconds_bucket" in text
