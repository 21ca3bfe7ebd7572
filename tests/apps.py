"""Fixtures that start the app under a TestClient on a fresh data dir, allowed to fetch
from the photo origin; each test passes only the settings it changes as overrides."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.modes import Mode
from tests.origin import Origin

Service = Callable[..., AbstractContextManager[TestClient]]


def base_settings(data_dir: Path, origin: Origin, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings every app test starts from, with the test's overrides on top."""
    return {
        "data_dir": data_dir,
        "allow_private_networks": f"127.0.0.1:{origin.port}",
        "workers": 2,
        "fetch_retries": 0,
        **overrides,
    }


@pytest.fixture
def service(tmp_path: Path, photo_origin: Origin, mode: Mode) -> Service:
    """Start the app in each mode (embedded workers, or Celery workers over PostgreSQL,
    Redis and S3); close it after."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[TestClient]:
        values = base_settings(tmp_path / "data", photo_origin, overrides)
        with TestClient(create_app(mode.settings(values))) as client:
            yield client

    return start


@pytest.fixture
def embedded(tmp_path: Path, photo_origin: Origin) -> Service:
    """The app in embedded mode only: for what does not depend on where work runs."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[TestClient]:
        values = base_settings(tmp_path / "data", photo_origin, overrides)
        with TestClient(create_app(Settings(**values))) as client:
            yield client

    return start
