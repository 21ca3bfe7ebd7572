"""Re-runs (SPEC §9) through the API, in both modes, against the loopback origin.

Each test uploads the same images twice (or more) and reads what the origin saw: how
many requests, with which conditional headers; and what the API says: ``reused``,
``reused_images``, and output images that stay valid when the earlier request goes.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from imgbatch.api import create_app
from imgbatch.config import Settings
from imgbatch.db.engine import make_engine, read_tx
from imgbatch.db.models import InputOutput, UrlCache
from tests.helpers import csv_bytes, wait_until
from tests.modes import (  # noqa: F401  (fixtures)
    Mode,
    get_output,
    mode_fixture,
    scaleout_fixture,
    scaleout_fleet_fixture,
)
from tests.origin import Origin, send_bytes

TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
LONG_AGO = formatdate(1_600_000_000, usegmt=True)


class Cached:
    """An origin route that answers like a caching-aware server: ``headers`` on every
    answer, and a 304 to a matching ``If-None-Match`` / ``If-Modified-Since`` unless
    ``honour_conditions`` is off. ``body`` may be changed between uploads."""

    def __init__(
        self, body: bytes, headers: dict[str, str], *, honour_conditions: bool = True
    ) -> None:
        self.body = body
        self.headers = headers
        self.honour_conditions = honour_conditions
        self.conditional: list[dict[str, str]] = []  # the conditions of each request
        self._lock = threading.Lock()

    def __call__(self, req: BaseHTTPRequestHandler) -> None:
        asked = {
            name: req.headers[name]
            for name in ("If-None-Match", "If-Modified-Since")
            if req.headers.get(name)
        }
        with self._lock:
            self.conditional.append(asked)
        etag, modified = self.headers.get("ETag"), self.headers.get("Last-Modified")
        matches = (
            asked.get("If-None-Match") == etag
            if "If-None-Match" in asked
            else "If-Modified-Since" in asked and asked["If-Modified-Since"] == modified
        )
        if self.honour_conditions and matches:
            send_bytes(req, b"", status=304, headers=self.headers)
            return
        send_bytes(req, self.body, content_type="image/jpeg", headers=self.headers)


@dataclass
class Run:
    request_id: str
    status: dict[str, Any]
    images: list[dict[str, Any]]


@dataclass
class Service:
    client: TestClient
    settings: Settings

    def run(self, urls: list[str], **options: str) -> Run:
        """Upload ``urls`` with the output ``options`` form fields (SPEC §10); wait for it."""
        body = csv_bytes([(n, f"SKU{n}", [url]) for n, url in enumerate(urls, start=1)])
        response = self.client.post(
            "/api/v1/requests",
            files={"file": ("products.csv", body, "text/csv")},
            data=options,
        )
        assert response.status_code == 202, response.text
        request_id = response.json()["request_id"]

        def finished() -> dict[str, Any] | None:
            status: dict[str, Any] = self.client.get(f"/api/v1/requests/{request_id}").json()
            return status if status["status"] in TERMINAL else None

        status = wait_until(finished, timeout=90)
        products = self.client.get(f"/api/v1/requests/{request_id}/products").json()["items"]
        images = [image for product in products for image in product["images"]]
        return Run(request_id, status, images)

    def output(self, url: str) -> bytes:
        response = get_output(self.client, url)
        assert response.status_code == 200, url
        return response.content

    def delete(self, run: Run) -> None:
        """``DELETE /api/v1/requests/{id}``; its own output images are gone after it."""
        response = self.client.delete(f"/api/v1/requests/{run.request_id}")
        assert response.status_code == 204, response.text
        for image in run.images:
            assert get_output(self.client, image["output_url"]).status_code != 200

    def rows(self, table: Any) -> int:
        engine = make_engine(self.settings.effective_database_url)
        try:
            with read_tx(engine) as conn:
                return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        finally:
            engine.dispose()


Start = Callable[..., Any]


@pytest.fixture
def service(tmp_path: Path, origin: Origin, mode: Mode) -> Iterator[Start]:
    @contextmanager
    def start(**overrides: Any) -> Iterator[Service]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "allow_private_networks": f"127.0.0.1:{origin.port}",
            "workers": 2,
            "fetch_retries": 0,
            **overrides,
        }
        settings = mode.settings(values)
        with TestClient(create_app(settings)) as client:
            yield Service(client, settings)

    yield start


def distinct_photos(photos: list[Path], count: int, tag: str = "") -> list[bytes]:
    """``count`` different JPEG files (a comment segment after SOI makes each unique)."""
    out = []
    for i in range(count):
        data = photos[i % len(photos)].read_bytes()
        comment = f"imgbatch test {tag}{i}".encode()
        out.append(
            data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
        )
    return out


def serve(
    origin: Origin, prefix: str, bodies: list[bytes], **headers: str
) -> tuple[list[str], list[Cached]]:
    routes = [Cached(body, dict(headers)) for body in bodies]
    urls = [origin.route(f"/{prefix}/{i}.jpg", route) for i, route in enumerate(routes)]
    return urls, routes


def hits(origin: Origin, urls: list[str]) -> int:
    return sum(origin.hits.get(url.removeprefix(origin.base_url), 0) for url in urls)


def assert_reused(first: Run, second: Run, service: Service) -> None:
    assert second.status["status"] == "completed"
    assert second.status["reused_images"] == len(second.images)
    assert all(image["reused"] for image in second.images)
    assert all(not image["reused"] for image in first.images)
    for before, after in zip(first.images, second.images, strict=True):
        assert after["output_url"] != before["output_url"]  # an object of its own
        assert service.output(after["output_url"]) == service.output(before["output_url"])
        assert after["output_bytes"] == before["output_bytes"]
        assert after["input_bytes"] == before["input_bytes"]


def test_fresh_response_is_reused_without_asking_the_origin(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    urls, _ = serve(
        origin, "fresh", distinct_photos(photos, 3), **{"Cache-Control": "max-age=3600"}
    )
    with service() as svc:
        first = svc.run(urls)
        assert first.status["status"] == "completed" and first.status["reused_images"] == 0
        second = svc.run(urls)
        assert_reused(first, second, svc)
        metrics = svc.client.get("/metrics").text
    assert hits(origin, urls) == 3  # the second upload never reached the origin
    assert 'imgbatch_reused_images{request_status="completed"} 3.0' in metrics


def test_stale_response_is_revalidated_by_etag(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    bodies = distinct_photos(photos, 3)
    urls, routes = [], []
    for i, body in enumerate(bodies):
        route = Cached(body, {"Cache-Control": "no-cache", "ETag": f'"v1-{i}"'})
        urls.append(origin.route(f"/etag/{i}.jpg", route))
        routes.append(route)
    with service() as svc:
        first = svc.run(urls)
        second = svc.run(urls)
        assert_reused(first, second, svc)
    for i, route in enumerate(routes):
        assert route.conditional == [{}, {"If-None-Match": f'"v1-{i}"'}]


def test_stale_response_is_revalidated_by_last_modified(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    # No freshness at all (no heuristic either): every re-run asks, with the date.
    urls, routes = serve(origin, "lm", distinct_photos(photos, 2), **{"Last-Modified": LONG_AGO})
    with service() as svc:
        first = svc.run(urls)
        second = svc.run(urls)
        assert_reused(first, second, svc)
    for route in routes:
        assert route.conditional == [{}, {"If-Modified-Since": LONG_AGO}]


def test_changed_bytes_under_the_same_wrong_etag_are_processed_anew(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    """The origin keeps one ETag for new bytes and ignores If-None-Match: the 200 is
    hashed, so the new picture is processed, never the old output handed out."""
    old, new = distinct_photos(photos[:2], 2)
    route = Cached(old, {"Cache-Control": "no-cache", "ETag": '"same"'}, honour_conditions=False)
    url = origin.route("/changed/a.jpg", route)
    with service() as svc:
        first = svc.run([url])
        route.body = new
        second = svc.run([url])
        third = svc.run([url])  # and the new bytes are what is remembered
    assert route.conditional[1] == {"If-None-Match": '"same"'}
    assert not second.images[0]["reused"] and second.status["reused_images"] == 0
    assert second.images[0]["input_bytes"] == len(new) != first.images[0]["input_bytes"]
    picture = Image.open(io.BytesIO(svc.output(second.images[0]["output_url"])))
    assert picture.size == Image.open(io.BytesIO(new)).size != Image.open(io.BytesIO(old)).size
    # Same bytes again (the 200 hashes to the input just processed): reused, not decoded.
    assert third.images[0]["reused"]
    assert svc.output(third.images[0]["output_url"]) == svc.output(second.images[0]["output_url"])


def test_no_store_is_never_recorded(service: Start, origin: Origin, photos: list[Path]) -> None:
    urls, routes = serve(
        origin,
        "nostore",
        distinct_photos(photos, 2),
        **{"Cache-Control": "no-store", "ETag": '"x"'},
    )
    with service() as svc:
        first = svc.run(urls)
        second = svc.run(urls)
        assert svc.rows(UrlCache) == 0 and svc.rows(InputOutput) == 0
    assert first.status["status"] == second.status["status"] == "completed"
    assert second.status["reused_images"] == 0
    assert hits(origin, urls) == 4
    assert all(route.conditional == [{}, {}] for route in routes)


def test_same_bytes_under_a_new_url_are_reused_without_decoding(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    bodies = distinct_photos(photos, 3)
    old_urls, _ = serve(origin, "old", bodies, **{"Cache-Control": "max-age=3600"})
    new_urls, _ = serve(origin, "new", bodies)
    with service() as svc:
        first = svc.run(old_urls)
        second = svc.run(new_urls)
        assert_reused(first, second, svc)
    assert hits(origin, new_urls) == 3  # downloaded and hashed, not decoded


def test_different_options_are_never_reused(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    urls, _ = serve(origin, "opts", distinct_photos(photos, 2), **{"Cache-Control": "max-age=3600"})
    with service() as svc:
        first = svc.run(urls)  # the defaults: JPEG q50
        second = svc.run(urls, quality="80")
        third = svc.run(urls, quality="80")
        webp = svc.run(urls, format="webp")
        again = svc.run(urls)
    assert second.status["reused_images"] == 0
    assert all(
        b["output_bytes"] > a["output_bytes"]
        for a, b in zip(first.images, second.images, strict=True)
    )
    assert third.status["reused_images"] == 2  # under its own options, reused again
    assert webp.status["reused_images"] == 0
    # (S3 URLs carry a signature query: the path names the file)
    assert all(urlsplit(image["output_url"]).path.endswith(".webp") for image in webp.images)
    # Each request's outputs are named for its own options, reused from the same options.
    assert again.status["reused_images"] == 2
    for before, after in zip(first.images, again.images, strict=True):
        assert urlsplit(after["output_url"]).path.endswith(".jpg")
        assert svc.output(after["output_url"]) == svc.output(before["output_url"])
    assert hits(origin, urls) == 6  # q50, q80 and WebP once each


def test_reuse_off_processes_everything(service: Start, origin: Origin, photos: list[Path]) -> None:
    urls, routes = serve(
        origin,
        "off",
        distinct_photos(photos, 2),
        **{"Cache-Control": "max-age=3600", "ETag": '"e"'},
    )
    with service(reuse=False) as svc:
        svc.run(urls)
        second = svc.run(urls)
        assert svc.rows(UrlCache) == 0
    assert second.status["status"] == "completed" and second.status["reused_images"] == 0
    assert not any(image["reused"] for image in second.images)
    assert all(route.conditional == [{}, {}] for route in routes)


def test_deleting_the_earlier_request_breaks_nothing(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    bodies = distinct_photos(photos, 2)
    fresh, _ = serve(origin, "keep", bodies[:1], **{"Cache-Control": "max-age=3600"})
    tagged, routes = serve(
        origin, "tagged", bodies[1:], **{"Cache-Control": "no-cache", "ETag": '"t"'}
    )
    urls = fresh + tagged
    with service() as svc:
        first = svc.run(urls)
        second = svc.run(urls)
        assert second.status["reused_images"] == 2
        svc.delete(first)
        # The later request's images are its own objects: still there.
        for image in second.images:
            assert svc.output(image["output_url"])
        # The cache follows the newest copy: a third run is reused from the second's.
        third = svc.run(urls)
        assert third.status["reused_images"] == 2
        for before, after in zip(second.images, third.images, strict=True):
            assert svc.output(after["output_url"]) == svc.output(before["output_url"])
        svc.delete(second)
        svc.delete(third)
        # Every earlier output is gone: a fresh entry or a 304 leads to a new download.
        fourth = svc.run(urls)
    assert fourth.status["status"] == "completed" and fourth.status["reused_images"] == 0
    assert hits(origin, fresh) == 2  # the first run, and the fourth's unconditional GET
    # The 304 could not be used (its output was deleted): asked again without conditions.
    assert routes[0].conditional == [
        {},
        {"If-None-Match": '"t"'},
        {"If-None-Match": '"t"'},
        {"If-None-Match": '"t"'},
        {},
    ]
    pictures = [Image.open(io.BytesIO(svc.output(i["output_url"]))) for i in fourth.images]
    assert [p.size for p in pictures] == [Image.open(io.BytesIO(b)).size for b in bodies]


def test_concurrent_requests_for_the_same_new_input_record_it_once(
    service: Start, origin: Origin, photos: list[Path]
) -> None:
    urls, _ = serve(origin, "race", distinct_photos(photos, 6), **{"Cache-Control": "max-age=3600"})
    with service() as svc:
        runs: list[Run] = []
        threads = [threading.Thread(target=lambda: runs.append(svc.run(urls))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runs) == 3 and all(run.status["status"] == "completed" for run in runs)
        assert svc.rows(UrlCache) == 6 and svc.rows(InputOutput) == 6
        outputs = {
            hashlib.sha256(svc.output(image["output_url"])).hexdigest()
            for run in runs
            for image in run.images
        }
    assert len(outputs) == 6  # one output per input, whoever made it
