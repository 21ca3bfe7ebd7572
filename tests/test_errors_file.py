"""The errors file (SPEC §4) through the API: its rows, its link, and its re-upload
retrying just the images that failed."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import wait_until
from tests.origin import Origin, send_bytes, stall

TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
Start = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def start(tmp_path: Path, photo_origin: Origin) -> Start:
    @contextmanager
    def run(**overrides: Any) -> Iterator[TestClient]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "allow_private_networks": f"127.0.0.1:{photo_origin.port}",
            "workers": 1,
            "fetch_retries": 0,
            **overrides,
        }
        with TestClient(create_app(Settings(**values))) as client:
            yield client

    return run


def submit(client: TestClient, body: bytes) -> str:
    response = client.post("/api/v1/requests", files={"file": ("p.csv", body, "text/csv")})
    assert response.status_code == 202, response.text
    assert response.json()["errors_csv_url"] is None
    request_id: str = response.json()["request_id"]
    return request_id


def finished(client: TestClient, request_id: str) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/requests/{request_id}").json()
        return body if body["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(status, timeout=60)
    return result


def test_the_errors_file_lists_failed_urls_and_its_reupload_retries_only_them(
    start: Start, photo_origin: Origin, photos: list[Path]
) -> None:
    good = [photo_origin.url(f"/photos/{p.name}") for p in photos[:2]]
    gone = photo_origin.url("/gone.jpg")  # 404 for now
    text = photo_origin.url("/page.jpg")
    page = b"<!doctype html><title>Shop</title>"
    photo_origin.route("/page.jpg", lambda req: send_bytes(req, page, content_type="text/html"))
    body = (
        "Serial No;Product Name;Input Image Urls\r\n"  # semicolons: the errors file keeps them
        f"1;Mug, blue;{good[0]},{gone},{text}\r\n"
        f"2;Tee;{good[1]}\r\n"
        f"3;Cap;{gone}\r\n"
    ).encode()
    with start() as client:
        request_id = submit(client, body)
        status = finished(client, request_id)
        assert status["status"] == "completed_with_errors"
        assert status["failed_images"] == 3
        assert status["errors_csv_url"] == (
            f"http://127.0.0.1:8000/api/v1/requests/{request_id}/errors.csv"
        )
        response = client.get(f"/api/v1/requests/{request_id}/errors.csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert f'filename="{request_id}-errors.csv"' in response.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(response.text), delimiter=";"))
        assert table == [
            ["Serial No", "Product Name", "Input Image Urls", "Errors"],
            [
                "1",
                "Mug, blue",
                f"{gone},{text}",
                f"{gone}: http_error: the server answered 404 Not Found\n"
                f"{text}: not_an_image: the URL returned a web page (HTML), not an image",
            ],
            ["3", "Cap", gone, f"{gone}: http_error: the server answered 404 Not Found"],
        ]

        # The person fixes the sources and uploads the errors file as it is.
        photo_origin.serve_file("/gone.jpg", photos[2])
        photo_origin.serve_file("/page.jpg", photos[3])
        photo_origin.hits.clear()
        again = submit(client, response.content)
        retried = finished(client, again)
    assert retried["status"] == "completed"
    assert (retried["total_products"], retried["total_images"]) == (2, 3)
    # Only the failed images were fetched again (the one gone URL, listed twice, once).
    assert photo_origin.hits == {"/gone.jpg": 1, "/page.jpg": 1}


def test_a_request_without_failures_has_no_errors_link_and_an_empty_errors_file(
    start: Start, photo_origin: Origin, photos: list[Path]
) -> None:
    url = photo_origin.url(f"/photos/{photos[0].name}")
    with start() as client:
        request_id = submit(client, f"S. No.,Product Name,Input Image Urls\n1,A,{url}\n".encode())
        status = finished(client, request_id)
        assert status["status"] == "completed"
        assert status["errors_csv_url"] is None
        response = client.get(f"/api/v1/requests/{request_id}/errors.csv")
    assert response.status_code == 200
    assert response.text == "S. No.,Product Name,Input Image Urls,Errors\r\n"


def test_the_errors_file_is_a_409_until_the_request_finishes(
    start: Start, photo_origin: Origin
) -> None:
    url = photo_origin.route("/slow.jpg", stall(photo_origin, b"\xff\xd8", 10_000))
    with start(fetch_timeout=30) as client:
        request_id = submit(client, f"S. No.,Product Name,Input Image Urls\n1,A,{url}\n".encode())
        response = client.get(f"/api/v1/requests/{request_id}/errors.csv")
        assert response.status_code == 409
        assert response.json()["detail"]["request_id"] == request_id
        client.post(f"/api/v1/requests/{request_id}/cancel")
