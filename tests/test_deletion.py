"""DELETE /api/v1/requests/{id} and IMGBATCH_RETENTION_DAYS, on local and S3 storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgbatch.db.engine import make_engine
from imgbatch.db.models import IdempotencyKey, Image, Product, Request
from imgbatch.deletion import StillRunning, delete_request, purge_finished
from imgbatch.storage import open_storage
from tests.helpers import csv_bytes, wait_until
from tests.modes import (  # noqa: F401  (fixtures)
    Mode,
    mode_fixture,
    scaleout_fixture,
    scaleout_fleet_fixture,
)
from tests.origin import Origin
from tests.tenants import Start, photo_csv, stored_keys, tenants_fixture  # noqa: F401


def test_delete_removes_rows_and_images_and_only_for_the_owner(
    tenants: Start,
    mode: Mode,
    photo_origin: Origin,
    photos: list[Path],
    tmp_path: Path,
) -> None:
    with tenants() as (alpha, beta):
        mine = alpha.upload(photo_csv(photo_origin, photos, 3)).json()["request_id"]
        kept = alpha.upload(photo_csv(photo_origin, photos, 2, start=3)).json()["request_id"]
        status = alpha.wait_terminal(mine)["status"]
        assert status == "completed", alpha.get(f"/api/v1/requests/{mine}/products").json()
        assert alpha.wait_terminal(kept)["status"] == "completed"
        keys = stored_keys(mode, tmp_path / "data")
        assert len([k for k in keys if k.startswith(mine)]) == 3

        # Another key can neither see nor delete it.
        assert beta.delete(f"/api/v1/requests/{mine}").status_code == 404
        assert alpha.get(f"/api/v1/requests/{mine}").status_code == 200

        answer = alpha.delete(f"/api/v1/requests/{mine}")
        assert answer.status_code == 204 and answer.content == b""
        assert alpha.get(f"/api/v1/requests/{mine}").status_code == 404
        assert alpha.get(f"/api/v1/requests/{mine}/output.csv").status_code == 404
        assert alpha.delete(f"/api/v1/requests/{mine}").status_code == 404
        left = stored_keys(mode, tmp_path / "data")
        assert not [k for k in left if k.startswith(mine)]
        assert len([k for k in left if k.startswith(kept)]) == 2  # the other request untouched
        assert alpha.get("/api/v1/requests").json()["total"] == 1


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_delete_is_refused_while_the_request_runs(tenants: Start) -> None:
    body = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
    with tenants(work=False) as (alpha, _):
        request_id = alpha.upload(body).json()["request_id"]
        answer = alpha.delete(f"/api/v1/requests/{request_id}")
        assert answer.status_code == 409
        assert answer.json()["detail"]["status"] == "pending"
        cancel = alpha.client.post(f"/api/v1/requests/{request_id}/cancel", headers=alpha.headers)
        assert cancel.status_code == 200
        assert alpha.delete(f"/api/v1/requests/{request_id}").status_code == 204


def test_delete_and_purge_functions(tmp_path: Path) -> None:
    """The functions the CLI's ``requests delete`` and ``purge`` call."""
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from imgbatch.api import create_app
    from imgbatch.config import Settings

    settings = Settings(data_dir=tmp_path)
    body = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
    with TestClient(create_app(settings, work=False)) as client:
        files = {"file": ("a.csv", body, "text/csv")}
        first = client.post("/api/v1/requests", files=files).json()["request_id"]
        second = client.post("/api/v1/requests", files=files).json()["request_id"]
    engine = make_engine(settings.effective_database_url)
    storage = open_storage(settings)
    with pytest.raises(StillRunning):
        delete_request(engine, storage, first)
    for request_id in (first, second):
        client_less_cancel(engine, request_id)
    assert purge_finished(engine, storage, timedelta(days=1)) == 0  # too recent
    assert delete_request(engine, storage, first) is True
    assert delete_request(engine, storage, first) is False
    assert purge_finished(engine, storage, timedelta(0)) == 1
    with engine.connect() as conn:
        for table in (Request, Product, Image, IdempotencyKey):
            assert conn.execute(table.__table__.select()).first() is None


def client_less_cancel(engine: Any, request_id: str) -> None:
    from imgbatch.db.work import cancel_request

    assert cancel_request(engine, request_id=request_id)


def test_retention_purges_finished_requests_with_their_images(
    tenants: Start,
    mode: Mode,
    photo_origin: Origin,
    photos: list[Path],
    tmp_path: Path,
) -> None:
    # Two seconds of retention: the periodic pass runs every half second.
    with tenants(retention_days=2 / 86400) as (alpha, _):
        request_id = alpha.upload(photo_csv(photo_origin, photos, 2)).json()["request_id"]
        alpha.wait_terminal(request_id)
        assert [k for k in stored_keys(mode, tmp_path / "data") if k]
        wait_until(
            lambda: alpha.get(f"/api/v1/requests/{request_id}").status_code == 404, timeout=30
        )
        assert stored_keys(mode, tmp_path / "data") == []
