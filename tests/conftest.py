"""Shared fixtures: the photo corpus, a local origin, and real services (or a skip)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.origin import Origin
from tests.s3server import moto_s3, moto_server  # noqa: F401  (fixtures for every test)

# A copy of the shared photo corpus, kept in the repository so any clone can test.
CORPUS = Path(__file__).resolve().parent / "data" / "photos"

REQUIRE_SERVICES = os.environ.get("IMGBATCH_REQUIRE_SERVICES") == "1"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent on a laptop; fail under IMGBATCH_REQUIRE_SERVICES=1."""
    if service_reachable(host, port):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} on {host}:{port} is required (IMGBATCH_REQUIRE_SERVICES=1)")
    pytest.skip(f"{name} on {host}:{port} is not running")


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
