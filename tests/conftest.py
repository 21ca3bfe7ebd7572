"""Shared fixtures: the photo corpus and a local origin; the plugins below add real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.origin import Origin

# Fixture modules, registered for every test: moto's S3, databases, the two modes, a live server,
# and the app under a TestClient.
pytest_plugins = ["tests.s3server", "tests.databases", "tests.modes", "tests.live", "tests.apps"]

# A copy of the shared photo corpus, kept in the repository so any clone can test.
CORPUS = Path(__file__).resolve().parent / "data" / "photos"


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    files = sorted(CORPUS.glob("*.jpg"))
    assert files, f"no photos in {CORPUS}"
    return files


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    yield server
    server.stop()


@pytest.fixture
def photo_origin(origin: Origin, photos: list[Path]) -> Origin:
    """The origin serving every corpus photo at /photos/<name>."""
    for photo in photos:
        origin.serve_file(f"/photos/{photo.name}", photo)
    return origin
