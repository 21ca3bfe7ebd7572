"""The HTTP API end to end: upload, process against a local origin, read results."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.apps import Service
from tests.helpers import (
    csv_bytes,
    quantization_of,
    reference_quantization,
    wait_terminal,
    wait_until,
)
from tests.modes import get_output
from tests.origin import Origin, send_bytes


def upload(client: TestClient, body: bytes, **data: str) -> Any:
    return client.post(
        "/api/v1/requests", files={"file": ("products.csv", body, "text/csv")}, data=data
    )


def photo_urls(origin: Origin, photos: list[Path], count: int, start: int = 0) -> list[str]:
    return [origin.url(f"/photos/{photos[(start + i) % len(photos)].name}") for i in range(count)]


HEADERS = [
    ("S. No.", "Product Name", "Input Image Urls"),
    ("Serial Number", "product name", "Input Image URLs"),
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("quoted", [True, False])
def test_original_example_completes_with_hosted_jpegs(
    service: Service,
    photo_origin: Origin,
    photos: list[Path],
    header: tuple[str, ...],
    quoted: bool,
) -> None:
    urls = photo_urls(photo_origin, photos, 6)
    body = csv_bytes([(1, "SKU1", urls[:3]), (2, "SKU2", urls[3:])], header=header, quoted=quoted)
    with service() as client:
        response = upload(client, body)
        assert response.status_code == 202, response.text
        status = response.json()
        assert response.headers["location"].endswith(f"/api/v1/requests/{status['request_id']}")
        assert status["total_products"] == 2 and status["total_images"] == 6
        final = wait_terminal(client, status["request_id"])
        assert final["status"] == "completed"
        assert final["processed_images"] == 6 and final["failed_images"] == 0
        assert final["progress"] == 1.0 and final["finished_at"] is not None
        out = client.get(final["output_csv_url"].removeprefix("http://127.0.0.1:8000"))
        assert out.status_code == 200
        rows = list(csv.reader(io.StringIO(out.text)))
        assert rows[0] == [*header, "Output Image Urls"]
        assert [r[0] for r in rows[1:]] == ["1", "2"]
        assert rows[1][2].split(",") == urls[:3]
        reference = reference_quantization(50)
        for row, expected_inputs in zip(rows[1:], (urls[:3], urls[3:]), strict=True):
            outputs = row[3].split(",")
            assert len(outputs) == 3
            for input_url, output_url in zip(expected_inputs, outputs, strict=True):
                source = (
                    photo_origin.routes and (photos_by_name(photos)[input_url.rsplit("/", 1)[1]])
                )
                jpeg = get_output(client, output_url)
                assert jpeg.status_code == 200
                assert jpeg.headers["content-type"] == "image/jpeg"
                decoded = Image.open(io.BytesIO(jpeg.content))
                assert decoded.format == "JPEG"
                assert decoded.size == Image.open(source).size
                assert len(jpeg.content) < source.stat().st_size
                assert quantization_of(jpeg.content) == reference


def photos_by_name(photos: list[Path]) -> dict[str, Path]:
    return {p.name: p for p in photos}


def test_invalid_csv_lists_every_error_and_stores_nothing(service: Service) -> None:
    body = (
        b"S. No.,Product Name,Input Image Urls\n"
        b"1,SKU1,https://img.example/a.jpg\n"
        b"x,,ftp://img.example/b.jpg\n"
        b"1,SKU3,\n"
    )
    with service() as client:
        response = upload(client, body)
        assert response.status_code == 422
        errors = response.json()["detail"]["errors"]
        lines = {(e["line"], e["column"]) for e in errors}
        assert (3, "S. No.") in lines
        assert (3, "Product Name") in lines
        assert (3, "Input Image Urls") in lines
        assert any(e["line"] == 4 and e["column"] == "S. No." for e in errors)  # duplicate serial
        assert any(e["line"] == 4 and e["column"] == "Input Image Urls" for e in errors)
        assert all(e["message"] for e in errors)
        assert client.get("/api/v1/requests").json()["total"] == 0


def test_unreadable_and_oversized_files(service: Service) -> None:
    with service(max_upload_bytes=2000) as client:
        assert upload(client, b"").status_code == 400
        assert upload(client, b"\x89PNG\r\n\x1a\n\x00\x00\x00binary").status_code == 400
        latin1 = "S. No.,Product Name,Input Image Urls\n1,Caf\xe9,https://x.example/a.jpg\n"
        assert upload(client, latin1.encode("latin-1")).status_code == 400
        big = csv_bytes([(i, f"SKU{i}", [f"https://x.example/{i}.jpg"]) for i in range(1, 200)])
        response = upload(client, big)
        assert response.status_code == 413
        assert client.get("/api/v1/requests").json()["total"] == 0


def test_failed_images_keep_their_place_and_siblings_succeed(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    good = photo_urls(photo_origin, photos, 2)
    missing = photo_origin.url("/nothing-here.jpg")
    photo_origin.route(
        "/page.html", lambda r: send_bytes(r, b"<html></html>", content_type="image/jpeg")
    )
    not_image = photo_origin.url("/page.html")
    body = csv_bytes(
        [(1, '=HYPERLINK("x")', [good[0], missing, good[1]]), (2, "Plain", [not_image])]
    )
    with service() as client:
        request_id = upload(client, body).json()["request_id"]
        final = wait_terminal(client, request_id)
        assert final["status"] == "completed_with_errors"
        assert (final["processed_images"], final["failed_images"]) == (2, 2)
        products = client.get(f"/api/v1/requests/{request_id}/products").json()
        images = products["items"][0]["images"]
        assert [i["status"] for i in images] == ["succeeded", "failed", "succeeded"]
        assert images[1]["error_code"] == "http_error" and "404" in images[1]["error"]
        assert images[1]["output_url"] is None
        assert products["items"][1]["images"][0]["error_code"] == "not_an_image"
        out = client.get(f"/api/v1/requests/{request_id}/output.csv").text
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[1][1] == '\'=HYPERLINK("x")'
        first, empty, third = rows[1][3].split(",")
        assert first and third and empty == ""
        assert rows[2][3] == ""


def test_default_policy_blocks_loopback_origin(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    urls = photo_urls(photo_origin, photos, 1)
    with service(allow_private_networks="") as client:
        request_id = upload(client, csv_bytes([(1, "SKU1", urls)])).json()["request_id"]
        final = wait_terminal(client, request_id)
        assert final["status"] == "failed"
        image = client.get(f"/api/v1/requests/{request_id}/products").json()["items"][0]["images"][
            0
        ]
        assert image["error_code"] == "blocked_address"
    assert photo_origin.hits == {}


def test_same_url_is_fetched_once(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    url = photo_urls(photo_origin, photos, 1)[0]
    spelled = url.replace("http://", "HTTP://") + "#frag"
    with service() as client:
        body = csv_bytes([(1, "A", [url, spelled]), (2, "B", [url])])
        request_id = upload(client, body).json()["request_id"]
        final = wait_terminal(client, request_id)
        assert final["status"] == "completed" and final["processed_images"] == 3
        items = client.get(f"/api/v1/requests/{request_id}/products").json()["items"]
        outputs = {i["output_url"] for item in items for i in item["images"]}
        assert len(outputs) == 1
    assert sum(photo_origin.hits.values()) == 1


def test_status_pagination_and_output_conflict(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.3
    rows = [(i, f"SKU{i}", photo_urls(photo_origin, photos, 2, i)) for i in range(1, 8)]
    with service() as client:
        request_id = upload(client, csv_bytes(rows)).json()["request_id"]
        early = client.get(f"/api/v1/requests/{request_id}/output.csv")
        assert early.status_code == 409
        assert early.json()["detail"]["request_id"] == request_id
        page = client.get(f"/api/v1/requests/{request_id}/products?offset=2&limit=3").json()
        assert (page["total"], page["offset"], page["limit"]) == (7, 2, 3)
        assert [p["serial"] for p in page["items"]] == ["3", "4", "5"]
        assert [i["position"] for i in page["items"][0]["images"]] == [0, 1]
        assert client.get(f"/api/v1/requests/{request_id}/products?limit=501").status_code == 422
        assert wait_terminal(client, request_id)["status"] == "completed"
        listing = client.get("/api/v1/requests").json()
        assert listing["total"] == 1 and listing["items"][0]["request_id"] == request_id
        assert client.get("/api/v1/requests/nope").status_code == 404


def test_cancel_then_retry_resumes(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.5
    rows = [(i, f"SKU{i}", photo_urls(photo_origin, photos, 3, i)) for i in range(1, 30)]
    with service(chunk_size=2, chunks_per_request=1) as client:
        request_id = upload(client, csv_bytes(rows)).json()["request_id"]
        cancelled = client.post(f"/api/v1/requests/{request_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert client.post(f"/api/v1/requests/{request_id}/cancel").status_code == 409
        final = wait_terminal(client, request_id)
        assert final["status"] == "cancelled"
        assert final["processed_images"] + final["failed_images"] < final["total_images"]
        done = final["processed_images"] + final["failed_images"]
        assert final["cancelled_images"] == final["total_images"] - done > 0
        assert client.get(f"/api/v1/requests/{request_id}/output.csv").status_code == 200
        photo_origin.delay = 0
        assert client.post(f"/api/v1/requests/{request_id}/retry").status_code == 202
        again = wait_terminal(client, request_id)
        assert again["status"] == "completed" and again["cancelled_images"] == 0


def test_retry_failed_images(service: Service, photo_origin: Origin, photos: list[Path]) -> None:
    late = photo_origin.url("/late.jpg")
    good = photo_urls(photo_origin, photos, 1)
    with service() as client:
        request_id = upload(client, csv_bytes([(1, "SKU1", [good[0], late])])).json()["request_id"]
        assert wait_terminal(client, request_id)["status"] == "completed_with_errors"
        photo_origin.serve_file("/late.jpg", photos[0])
        retried = client.post(f"/api/v1/requests/{request_id}/retry")
        assert retried.status_code == 202
        assert retried.json()["failed_images"] == 0
        final = wait_terminal(client, request_id)
        assert final["status"] == "completed" and final["processed_images"] == 2
        assert client.post(f"/api/v1/requests/{request_id}/retry").status_code == 409


def test_restart_resumes_unfinished_work(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.4
    rows = [(i, f"SKU{i}", photo_urls(photo_origin, photos, 2, i)) for i in range(1, 16)]
    with service(chunk_size=2, chunks_per_request=1) as client:
        request_id = upload(client, csv_bytes(rows)).json()["request_id"]
        wait_until(
            lambda: client.get(f"/api/v1/requests/{request_id}").json()["processed_images"] > 0
        )
    photo_origin.delay = 0
    with service() as client:
        final = wait_terminal(client, request_id)
        assert final["status"] == "completed" and final["processed_images"] == 30


def test_aliases_sample_files_health_docs(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    with service() as client:
        sample = client.get("/api/v1/sample.csv")
        assert sample.status_code == 200 and sample.headers["content-type"].startswith("text/csv")
        assert sample.text.startswith("S. No.,Product Name,Input Image Urls")
        body = csv_bytes([(1, "SKU1", photo_urls(photo_origin, photos, 1))])
        response = client.post("/upload", files={"file": ("a.csv", body, "text/csv")})
        assert response.status_code == 202
        request_id = response.json()["request_id"]
        assert client.get(f"/status/{request_id}").json()["request_id"] == request_id
        wait_terminal(client, request_id)
        item = client.get(f"/api/v1/requests/{request_id}/products").json()["items"][0]
        url = item["images"][0]["output_url"]
        image = get_output(client, url)
        assert image.headers["etag"] and "max-age" in image.headers["cache-control"]
        again = get_output(client, url, headers={"If-None-Match": image.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/files/../../etc/passwd").status_code == 404
        assert client.get("/files/nope/1.jpg").status_code == 404
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/docs").status_code == 200
        assert "/api/v1/requests" in client.get("/openapi.json").json()["paths"]


def test_webhook_url_must_be_public_http(service: Service) -> None:
    body = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
    with service(allow_private_networks="") as client:
        for bad in ("ftp://hooks.example/x", "http://127.0.0.1:9/hook", "http://[::1]/x"):
            response = upload(client, body, webhook_url=bad)
            assert response.status_code == 422, bad
        assert client.get("/api/v1/requests").json()["total"] == 0
