"""Factories and waits shared by the tests."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

ORIGINAL_HEADER = ("S. No.", "Product Name", "Input Image Urls")


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
