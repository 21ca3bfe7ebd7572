"""One request that mixes every odd input and every hostile URL (issue: safe downloads and
robust decoding): it ends completed_with_errors, each failure with the right error_code,
every good image correct, nothing blocked ever reaching its target, and the service
healthy after."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests import images
from tests.helpers import csv_bytes, wait_until
from tests.origin import Origin, answer, endless, redirect, stall


@pytest.fixture
def trap() -> Iterator[Origin]:
    """A server no URL may ever reach: it is not in the allow-list."""
    server = Origin().start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_request_mixing_every_case(
    tmp_path: Path, origin: Origin, trap: Origin, photos: list[Path]
) -> None:
    rotated = images.jpeg_with_exif(images.marked((64, 32)), Orientation=6)
    good = {
        "/photo.jpg": photos[0].read_bytes(),
        "/rotated.jpg": rotated,
        "/alpha.png": images.transparent_png("RGBA"),
        "/cmyk.jpg": images.cmyk_jpeg((255, 0, 0, 0)),  # stored inverted: no cyan ink
        "/deep.png": images.gradient16(),
        "/anim.gif": images.animated("GIF", [(255, 0, 0), (0, 0, 255)]),
        "/progressive.jpg": images.encode(images.photo_like(), "JPEG", progressive=True),
    }
    for path, body in good.items():
        origin.serve_bytes(path, body, "application/octet-stream")  # type from the bytes
    trapped = trap.route("/secret", answer(200, b"you should not be here"))
    closed = closed_port()
    bad = {
        origin.route("/missing.jpg", answer(404, b"no")): "http_error",
        origin.route("/page.jpg", answer(200, images.html())): "not_an_image",
        origin.route("/doc.jpg", answer(200, images.pdf())): "unsupported_format",
        origin.route("/bomb.png", answer(200, images.png_header_bomb(30000, 30000))): (
            "too_many_pixels"
        ),
        origin.route("/cut.jpg", answer(200, rotated[: len(rotated) // 2])): "corrupt_image",
        origin.route("/endless.jpg", endless(origin)): "too_large",
        origin.route("/stall.jpg", stall(origin, b"\xff\xd8", 10_000)): "timeout",
        origin.route("/loop.jpg", redirect("/loop.jpg")): "too_many_redirects",
        origin.route("/to-trap.jpg", redirect(trapped)): "blocked_address",
        trapped: "blocked_address",
        f"http://0x7f000001:{trap.port}/x.jpg": "blocked_address",
        f"http://[::ffff:127.0.0.1]:{trap.port}/x.jpg": "blocked_address",
        f"http://localhost:{trap.port}/x.jpg": "blocked_address",
        f"http://127.0.0.1:{closed}/x.jpg": "connection_error",
    }
    good_urls = [origin.url(path) for path in good]
    rows = [(1, "Good", good_urls), (2, "Bad", list(bad))]
    settings = Settings(
        data_dir=tmp_path,
        allow_private_networks=f"127.0.0.1:{origin.port},127.0.0.1:{closed}",
        max_image_bytes=2_000_000,
        max_image_pixels=50_000_000,
        fetch_timeout=2,
        fetch_retries=0,
    )
    with TestClient(create_app(settings)) as client:
        request_id = client.post(
            "/api/v1/requests", files={"file": ("mixed.csv", csv_bytes(rows))}
        ).json()["request_id"]

        def finished() -> dict[str, object] | None:
            status = client.get(f"/api/v1/requests/{request_id}").json()
            return status if status["status"] not in ("pending", "processing") else None

        final = wait_until(finished, timeout=90)
        assert final["status"] == "completed_with_errors"
        assert final["processed_images"] == len(good)
        assert final["failed_images"] == len(bad)
        products = client.get(f"/api/v1/requests/{request_id}/products").json()["items"]
        failures = {i["input_url"]: i for i in products[1]["images"]}
        for url, code in bad.items():
            assert failures[url]["error_code"] == code, (url, failures[url])
            assert failures[url]["error"], url
        outputs = {}
        for image in products[0]["images"]:
            assert image["status"] == "succeeded", image
            path = image["output_url"].removeprefix("http://127.0.0.1:8000")
            outputs[image["input_url"].rsplit("/", 1)[1]] = Image.open(
                io.BytesIO(client.get(path).content)
            )
        for name, output in outputs.items():
            assert output.format == "JPEG" and output.mode in ("RGB", "L"), name
        assert outputs["rotated.jpg"].size == (32, 64)  # orientation 6 applied
        assert outputs["alpha.png"].convert("RGB").getpixel((0, 0)) >= (250, 250, 250)
        red, green, blue = outputs["cmyk.jpg"].convert("RGB").getpixel((8, 8))
        assert red < 40 and green > 215 and blue > 215  # cyan, not its inverse
        assert outputs["anim.gif"].convert("RGB").getpixel((8, 8))[0] > 200  # first frame
        low, high = outputs["deep.png"].convert("L").getextrema()
        assert high - low > 200  # 16 bits scaled, not clipped to white
        assert client.get("/healthz").status_code == 200
    assert trap.hits == {}
