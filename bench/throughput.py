"""End-to-end images/s against the CPU ceiling (issue: every core busy).

Ceiling: ``imaging.compress`` of the same images at quality 50 in a process pool with
one process per core, no network. End to end: 600 distinct URLs over the photo corpus,
served by an origin that adds 0, 50 and 200 ms per response, through ``imgbatch serve``
(upload to terminal status) and ``imgbatch run`` (the whole command).
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import httpx
from PIL import Image

from bench.common import (
    IMGBATCH,
    bench_env,
    csv_text,
    distinct_urls,
    live_server,
    origin,
    photo_names,
    upload,
    wait_terminal,
)
from bench.origin import PHOTOS
from imgbatch.imaging import compress
from imgbatch.options import OutputOptions

IMAGES = 600
PER_ROW = 3
DELAYS_MS = (0, 50, 200)


def plain_pillow(data: bytes) -> bytes:
    """The ceiling's work, as the target defines it: Pillow decodes, re-encodes at q50."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=50)
    return buffer.getvalue()


def ceiling(images: int = IMAGES, work: Callable[[bytes], object] = plain_pillow) -> float:
    """Images/s of decode + re-encode in a process pool, one process per core."""
    payloads = [(PHOTOS / name).read_bytes() for name in photo_names()]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(work, payloads))  # warm the workers up
        started = time.perf_counter()
        list(pool.map(work, (payloads[i % len(payloads)] for i in range(images)), chunksize=4))
        return images / (time.perf_counter() - started)


def _rows(base: str) -> list[list[str]]:
    urls = distinct_urls(base, IMAGES)
    return [urls[i : i + PER_ROW] for i in range(0, IMAGES, PER_ROW)]


def serve_rate(delay_ms: float) -> float:
    with origin(delay_ms) as base, live_server() as server, httpx.Client() as client:
        body = csv_text(_rows(base))
        started = time.perf_counter()
        request = upload(client, server.url, body)
        final = wait_terminal(client, server.url, str(request["request_id"]), poll=0.05)
        elapsed = time.perf_counter() - started
        assert final["status"] == "completed", final
        return IMAGES / elapsed


def run_rate(delay_ms: float) -> float:
    with origin(delay_ms) as base, tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        source.write_text(csv_text(_rows(base)))
        started = time.perf_counter()
        subprocess.run(
            [IMGBATCH, "run", str(source), "-o", str(Path(tmp) / "out.csv")],
            env=bench_env(Path(tmp) / "data"),
            check=True,
            capture_output=True,
        )
        return IMAGES / (time.perf_counter() - started)


def main() -> None:
    print(f"\n== Throughput: {IMAGES} distinct URLs, quality 50, {os.cpu_count()} cores ==")
    cpu = ceiling()
    ours = ceiling(work=partial(compress, options=OutputOptions(), max_pixels=50_000_000))
    print(f"CPU ceiling (Pillow decode + encode q50, process pool): {cpu:6.1f} images/s")
    print(f"  imgbatch.imaging.compress in the same pool:            {ours:6.1f} images/s")
    print(
        f"{'origin delay':>12} | {'serve img/s':>11} {'ratio':>6} | {'run img/s':>9} {'ratio':>6}"
    )
    for delay in DELAYS_MS:
        served = serve_rate(delay)
        ran = run_rate(delay)
        print(f"{delay:>9} ms | {served:11.1f} {served / cpu:6.2f} | {ran:9.1f} {ran / cpu:6.2f}")
    print(f"CPU ceiling again (drift check):                        {ceiling():6.1f} images/s")


if __name__ == "__main__":
    main()
