"""The errors file (SPEC §4) through the API: its rows, its link, and its re-upload
retrying just the images that failed."""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.apps import Service
from tests.helpers import wait_terminal
from tests.origin import Origin, send_bytes, stall


@pytest.fixture
def start(embedded: Service) -> Service:
    """The embedded app with a single worker."""
    return functools.partial(embedded, workers=1)


def submit(client: TestClient, body: bytes) -> str:
    response = client.post("/api/v1/requests", files={"file": ("p.csv", body, "text/csv")})
    assert response.status_code == 202, response.text
    assert response.json()["errors_csv_url"] is None
    request_id: str = response.json()["request_id"]
    return request_id


def test_the_errors_file_lists_failed_urls_and_its_reupload_retries_only_them(
    start: Service, photo_origin: Origin, photos: list[Path]
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
        status = wait_terminal(client, request_id)
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
        retried = wait_terminal(client, again)
    assert retried["status"] == "completed"
    assert (retried["total_products"], retried["total_images"]) == (2, 3)
    # Only the failed images were fetched again (the one gone URL, listed twice, once).
    assert photo_origin.hits == {"/gone.jpg": 1, "/page.jpg": 1}


def test_a_request_without_failures_has_no_errors_link_and_an_empty_errors_file(
    start: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    url = photo_origin.url(f"/photos/{photos[0].name}")
    with start() as client:
        request_id = submit(client, f"S. No.,Product Name,Input Image Urls\n1,A,{url}\n".encode())
        status = wait_terminal(client, request_id)
        assert status["status"] == "completed"
        assert status["errors_csv_url"] is None
        response = client.get(f"/api/v1/requests/{request_id}/errors.csv")
    assert response.status_code == 200
    assert response.text == "S. No.,Product Name,Input Image Urls,Errors\r\n"


def test_the_errors_file_is_a_409_until_the_request_finishes(
    start: Service, photo_origin: Origin
) -> None:
    url = photo_origin.route("/slow.jpg", stall(photo_origin, b"\xff\xd8", 10_000))
    with start(fetch_timeout=30) as client:
        request_id = submit(client, f"S. No.,Product Name,Input Image Urls\n1,A,{url}\n".encode())
        response = client.get(f"/api/v1/requests/{request_id}/errors.csv")
        assert response.status_code == 409
        assert response.json()["detail"]["request_id"] == request_id
        client.post(f"/api/v1/requests/{request_id}/cancel")
