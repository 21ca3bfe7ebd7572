"""Factories and waits shared by the tests."""

from __future__ import annotations

import io
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

ORIGINAL_HEADER = ("S. No.", "Product Name", "Input Image Urls")
# The imgbatch command of this virtualenv, for tests that run it as a subprocess.
IMGBATCH = str(Path(sys.executable).with_name("imgbatch"))
TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})


def csv_bytes(
    rows: Sequence[tuple[Any, str, Sequence[str]]],
    *,
    header: Sequence[str] = ORIGINAL_HEADER,
    quoted: bool = True,
    bom: bool = False,
    newline: str = "\n",
) -> bytes:
    """A CSV in the original format; ``quoted=False`` writes the URL list unquoted."""
    lines = [",".join(header)]
    for serial, name, urls in rows:
        cell = ",".join(urls)
        lines.append(f'{serial},{name},"{cell}"' if quoted else f"{serial},{name},{cell}")
    text = newline.join(lines) + newline
    return ("\ufeff" if bom else "").encode() + text.encode()


def reference_quantization(quality: int = 50) -> dict[int, list[int]]:
    """The quantisation tables Pillow's encoder writes at ``quality``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(buffer, "JPEG", quality=quality)
    return {k: list(v) for k, v in Image.open(buffer).quantization.items()}  # type: ignore[attr-defined]


def quantization_of(data: bytes) -> dict[int, list[int]]:
    return {k: list(v) for k, v in Image.open(io.BytesIO(data)).quantization.items()}  # type: ignore[attr-defined]


def wait_until(predicate: Any, *, timeout: float = 60, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def wait_terminal(client: Any, request_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a request's status (through a TestClient or an httpx client) until it ends."""

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/requests/{request_id}").json()
        return body if body["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(finished, timeout=timeout, interval=0.05)
    return result


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
