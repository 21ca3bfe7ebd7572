"""A service with two API keys, in each mode, for the tenant tests: embedded (local storage,
SQLite) and scale-out (Celery workers, PostgreSQL, S3 on moto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imgbatch.api import create_app
from tests.helpers import TERMINAL, csv_bytes, wait_until
from tests.modes import Mode, ScaleOut
from tests.origin import Origin

ALPHA, BETA = "alpha-key-0123456789", "beta-key-0123456789"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Tenant:
    """One API key's view of the service."""

    client: TestClient
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self.client.head(path, headers=self.headers, **kwargs)

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers)

    def upload(self, body: bytes, *, headers: dict[str, str] | None = None, **data: str) -> Any:
        return self.client.post(
            "/api/v1/requests",
            files={"file": ("products.csv", body, "text/csv")},
            data=data,
            headers={**self.headers, **(headers or {})},
        )

    def wait_terminal(self, request_id: str, timeout: float = 60) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = self.get(f"/api/v1/requests/{request_id}").json()
            return body if body["status"] in TERMINAL else None

        result: dict[str, Any] = wait_until(finished, timeout=timeout)
        return result


def photo_csv(origin: Origin, photos: list[Path], count: int = 3, start: int = 0) -> bytes:
    urls = [origin.url(f"/photos/{photos[(start + i) % len(photos)].name}") for i in range(count)]
    return csv_bytes([(1, f"SKU{start}", urls)])


Start = Callable[..., Any]


def stored_keys(mode: Mode, data_dir: Path) -> list[str]:
    """Every image key in the mode's storage: the data dir's files, or the bucket's objects."""
    if isinstance(mode, ScaleOut):
        client = s3_client(mode.backend.s3_endpoint_url)
        return [key.removeprefix("out/") for key in mode.backend.object_keys(client)]
    root = data_dir / "images"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def s3_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint_url)


@pytest.fixture(name="tenants")
def tenants_fixture(tmp_path: Path, photo_origin: Origin, mode: Mode) -> Iterator[Start]:
    """``start(**settings)`` opens the app with keys ALPHA and BETA; yields (alpha, beta)."""

    @contextmanager
    def start(*, work: bool = True, **overrides: Any) -> Iterator[tuple[Tenant, Tenant]]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "allow_private_networks": f"127.0.0.1:{photo_origin.port}",
            "workers": 1,
            "fetch_retries": 0,
            "api_keys": f"{ALPHA},{BETA}",
        }
        values.update(overrides)
        with TestClient(create_app(mode.settings(values), work=work)) as client:
            yield Tenant(client, ALPHA), Tenant(client, BETA)

    yield start
