"""Output options through the HTTP API (SPEC §10): form fields on both upload paths,
stored and echoed, and outputs whose format, extension, content type and size follow them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgbatch.options import equivalent_quality
from tests import images
from tests.apps import Service
from tests.helpers import TERMINAL, csv_bytes, quantization_of, reference_quantization, wait_until
from tests.modes import (  # noqa: F401  (fixtures)
    Mode,
    get_output,
    mode_fixture,
    scaleout_fixture,
    scaleout_fleet_fixture,
)
from tests.origin import Origin

PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
EXTENSIONS = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}


def magic_format(data: bytes) -> str:
    """The format a file's first bytes announce, read without Pillow."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "avif"
    return "unknown"


def upload(client: TestClient, body: bytes, path: str = "/api/v1/requests", **data: Any) -> Any:
    return client.post(path, files={"file": ("products.csv", body, "text/csv")}, data=data)


def finished(client: TestClient, request_id: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/requests/{request_id}").json()
        return body if body["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(terminal, timeout=120)
    assert result["status"] == "completed", result
    return result


def output_urls(client: TestClient, request_id: str) -> list[str]:
    page = client.get(f"/api/v1/requests/{request_id}/products").json()
    return [image["output_url"] for item in page["items"] for image in item["images"]]


def outputs(client: TestClient, request_id: str) -> list[tuple[str, Any]]:
    """(output URL, response) of every image of a finished request, in order."""
    return [(url, get_output(client, url)) for url in output_urls(client, request_id)]


def one_image_csv(url: str) -> bytes:
    return csv_bytes([(1, "SKU1", [url])])


# -- each format, in every mode --------------------------------------------------------------


def test_each_format_has_its_magic_bytes_content_type_size_and_extension(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    urls = [photo_origin.url(f"/photos/{photo.name}") for photo in photos[:2]]
    sizes = [Image.open(photo).size for photo in photos[:2]]
    with service() as client:
        submitted = {}
        for output_format in ("jpeg", "webp", "avif"):
            response = upload(client, csv_bytes([(1, "SKU1", urls)]), format=output_format)
            assert response.status_code == 202, response.text
            submitted[output_format] = response.json()
        for output_format, status in submitted.items():
            options = finished(client, status["request_id"])["options"]
            assert options == {
                "format": output_format,
                "quality": equivalent_quality(50, output_format),
                "max_size": None,
            }
            for (url, response), size in zip(
                outputs(client, status["request_id"]), sizes, strict=True
            ):
                suffix = f"-{output_format}-q{options['quality']}{EXTENSIONS[output_format]}"
                assert urlsplit(url).path.endswith(suffix)  # S3 URLs carry a signature query
                assert response.status_code == 200
                assert response.headers["content-type"] == CONTENT_TYPES[output_format]
                assert magic_format(response.content) == output_format
                decoded = Image.open(io.BytesIO(response.content))
                assert decoded.format == PILLOW_FORMATS[output_format]
                assert decoded.size == size


# -- options: chosen, echoed, defaulted ------------------------------------------------------


def test_options_are_echoed_on_every_status_and_the_original_paths(
    embedded: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    body = one_image_csv(photo_origin.url(f"/photos/{photos[0].name}"))
    chosen = {"quality": 70, "format": "webp", "max_size": 300}
    with embedded() as client:
        for path in ("/api/v1/requests", "/upload"):
            accepted = upload(client, body, path, **{k: str(v) for k, v in chosen.items()})
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["options"] == chosen
            request_id = accepted.json()["request_id"]
            assert finished(client, request_id)["options"] == chosen
            assert client.get(f"/status/{request_id}").json()["options"] == chosen
        listed = client.get("/api/v1/requests").json()["items"]
        assert [item["options"] for item in listed] == [chosen, chosen]


def test_quality_80_gives_jpeg_q80_tables(
    embedded: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    with embedded() as client:
        status = upload(
            client, one_image_csv(photo_origin.url(f"/photos/{photos[0].name}")), quality="80"
        ).json()
        assert status["options"] == {"quality": 80, "format": "jpeg", "max_size": None}
        finished(client, status["request_id"])
        [(url, response)] = outputs(client, status["request_id"])
        assert url.endswith("-jpeg-q80.jpg")
        assert quantization_of(response.content) == reference_quantization(80)


def test_defaults_come_from_the_settings(
    embedded: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    photo = next(p for p in photos if Image.open(p).width > Image.open(p).height)
    body = one_image_csv(photo_origin.url(f"/photos/{photo.name}"))
    with embedded(format="avif", max_size=200, quality=70) as client:
        status = upload(client, body).json()
        # The default quality is on JPEG's scale, mapped to AVIF's.
        expected = {"quality": equivalent_quality(70, "avif"), "format": "avif", "max_size": 200}
        assert status["options"] == expected
        finished(client, status["request_id"])
        [(_, response)] = outputs(client, status["request_id"])
        assert magic_format(response.content) == "avif"
        assert max(Image.open(io.BytesIO(response.content)).size) == 200
        # A field given overrides its default; the others keep theirs.
        given = upload(client, body, format="webp", quality="").json()["options"]
        assert given == {
            "quality": equivalent_quality(70, "webp"),
            "format": "webp",
            "max_size": 200,
        }
        assert upload(client, body, quality="33").json()["options"]["quality"] == 33


def test_same_image_under_two_option_sets_gives_two_outputs(
    embedded: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    body = one_image_csv(photo_origin.url(f"/photos/{photos[0].name}"))
    with embedded() as client:
        first = upload(client, body).json()["request_id"]
        second = upload(client, body, format="webp", quality="60", max_size="256").json()[
            "request_id"
        ]
        finished(client, first)
        finished(client, second)
        [(first_url, first_out)] = outputs(client, first)
        [(second_url, second_out)] = outputs(client, second)
    assert first_url != second_url
    assert first_out.content != second_out.content
    assert (magic_format(first_out.content), magic_format(second_out.content)) == ("jpeg", "webp")
    assert Image.open(io.BytesIO(first_out.content)).size == Image.open(photos[0]).size
    assert max(Image.open(io.BytesIO(second_out.content)).size) == 256


# -- max_size through the API -----------------------------------------------------------------


def test_max_size_on_landscape_portrait_and_small_inputs(
    embedded: Service, photo_origin: Origin
) -> None:
    sources = {
        "landscape.png": (900, 601),
        "portrait.png": (333, 1000),
        "small.png": (120, 90),
    }
    for name, size in sources.items():
        photo_origin.serve_bytes(
            f"/{name}", images.encode(images.photo_like(size), "PNG"), "image/png"
        )
    # Portrait by EXIF: stored 1000 x 400, shown 400 x 1000.
    rotated = images.jpeg_with_exif(images.photo_like((1000, 400)), Orientation=6)
    photo_origin.serve_bytes("/rotated.jpg", rotated)
    names = [*sources, "rotated.jpg"]
    shown = [*sources.values(), (400, 1000)]
    with embedded() as client:
        body = csv_bytes([(1, "SKU1", [photo_origin.url(f"/{name}") for name in names])])
        status = upload(client, body, max_size="250", format="webp").json()
        finished(client, status["request_id"])
        results = outputs(client, status["request_id"])
    for (width, height), (_, response) in zip(shown, results, strict=True):
        output = Image.open(io.BytesIO(response.content)).size
        if max(width, height) <= 250:
            assert output == (width, height)  # never scaled up
            continue
        assert max(output) == 250
        exact = (output[0] * height / width) if width >= height else (output[1] * width / height)
        short = output[1] if width >= height else output[0]
        assert abs(short - exact) <= 1, (width, height, output)


# -- invalid options: 422 naming the field, nothing stored ---------------------------------------

INVALID = [
    ("quality", "0"),
    ("quality", "96"),
    ("quality", "-5"),
    ("quality", "50.5"),
    ("quality", "high"),
    ("format", "png"),
    ("format", "JPEG "),
    ("format", "gif"),
    ("max_size", "15"),
    ("max_size", "16385"),
    ("max_size", "0"),
    ("max_size", "2048px"),
]


@pytest.mark.parametrize("path", ["/api/v1/requests", "/upload"])
def test_every_invalid_option_is_a_422_naming_the_field_and_stores_nothing(
    embedded: Service, photo_origin: Origin, photos: list[Path], path: str
) -> None:
    body = one_image_csv(photo_origin.url(f"/photos/{photos[0].name}"))
    with embedded() as client:
        for field, value in INVALID:
            response = upload(client, body, path, **{field: value})
            assert response.status_code == 422, (field, value, response.text)
            [error] = response.json()["detail"]["errors"]
            assert error["column"] == field, (field, value)
            assert error["message"]
        assert client.get("/api/v1/requests").json()["total"] == 0
