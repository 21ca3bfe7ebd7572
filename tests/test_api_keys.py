"""IMGBATCH_API_KEYS: every /api call needs a key, and each key sees only its own requests."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import csv_bytes

BODY = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_guard_the_api_and_separate_owners(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_keys="alpha-key, beta-key")
    with TestClient(create_app(settings, work=False)) as client:
        files = {"file": ("a.csv", BODY, "text/csv")}
        assert client.post("/api/v1/requests", files=files).status_code == 401
        wrong = client.post("/api/v1/requests", files=files, headers=bearer("nope"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/v1/sample.csv").status_code == 401
        created = client.post("/api/v1/requests", files=files, headers=bearer("alpha-key"))
        assert created.status_code == 202
        request_id = created.json()["request_id"]
        mine = client.get(f"/api/v1/requests/{request_id}", headers=bearer("alpha-key"))
        assert mine.status_code == 200
        assert client.get(f"/status/{request_id}", headers=bearer("beta-key")).status_code == 404
        for path in ("", "/products", "/output.csv"):
            url = f"/api/v1/requests/{request_id}{path}"
            assert client.get(url, headers=bearer("beta-key")).status_code == 404
        cancel = f"/api/v1/requests/{request_id}/cancel"
        assert client.post(cancel, headers=bearer("beta-key")).status_code == 404
        assert client.get("/api/v1/requests", headers=bearer("beta-key")).json()["total"] == 0
        assert client.get("/api/v1/requests", headers=bearer("alpha-key")).json()["total"] == 1
        assert client.get("/healthz").status_code == 200  # not under /api


def test_without_keys_the_api_is_open(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path), work=False)) as client:
        files = {"file": ("a.csv", BODY, "text/csv")}
        assert client.post("/api/v1/requests", files=files).status_code == 202
