"""Status latency under load, and memory through big requests with large images.

One ``imgbatch serve``; a request of 1,000 then one of 10,000 images, a quarter of them
4–8 MP photos. While the 10,000-image request runs, a second process asks for its status
200 times a second. Prints p50/p99 latency and the server's peak RSS for both sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from bench.common import (
    RssSampler,
    csv_text,
    live_server,
    mb,
    origin,
    photo_names,
    upload,
    wait_terminal,
)
from bench.origin import PHOTOS

# (name, width, height): 4, 6 and 8 megapixels, upscaled from the corpus.
LARGE = (("large4.jpg", 2450, 1633), ("large6.jpg", 3000, 2000), ("large8.jpg", 3464, 2309))


def make_large_photos(directory: Path) -> list[str]:
    source = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    for name, width, height in LARGE:
        source.resize((width, height)).save(directory / name, quality=90)
    return [name for name, _, _ in LARGE]


def mixed_rows(base: str, count: int, large: list[str], salt: str) -> list[list[str]]:
    small = photo_names()
    urls = []
    for i in range(count):
        name = large[i % len(large)] if i % 4 == 0 else small[i % len(small)]
        urls.append(f"{base}/u/{salt}{i}/{name}")  # other bytes too: nothing is reused
    return [urls[i : i + 4] for i in range(0, count, 4)]


def process(client: httpx.Client, server_url: str, pid: int, rows: list[list[str]], load: bool):
    with RssSampler(pid) as rss:
        started = time.perf_counter()
        request_id = str(upload(client, server_url, csv_text(rows))["request_id"])
        latency = None
        if load:
            time.sleep(2)  # let processing get going first
            status_url = f"{server_url}/api/v1/requests/{request_id}"
            result = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", status_url, "200", "20"],
                check=True,
                capture_output=True,
                text=True,
            )
            latency = json.loads(result.stdout)
        final = wait_terminal(client, server_url, request_id, poll=1)
        elapsed = time.perf_counter() - started
    return final, elapsed, rss, latency


def main() -> None:
    print("\n== Load: status latency at 200 req/s, memory through 1,000 and 10,000 images ==")
    with tempfile.TemporaryDirectory() as tmp:
        large = make_large_photos(Path(tmp))
        with origin(0, extra=Path(tmp)) as base, live_server() as server, httpx.Client() as client:
            for count, load in ((1_000, False), (10_000, True)):
                rows = mixed_rows(base, count, large, salt=f"{count}-")
                final, elapsed, rss, latency = process(
                    client, server.url, server.process.pid, rows, load
                )
                total = int(str(final["total_images"]))
                print(
                    f"{count:>6} images: {final['status']}, {total / elapsed:5.1f} images/s, "
                    f"peak RSS server {mb(rss.peak_main)}, PSS with its workers {mb(rss.peak_tree)}"
                )
                if latency:
                    print(
                        f"        status API under {latency['rate']:.0f} req/s: "
                        f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
                        f"max {latency['max_ms']:.1f} ms, errors {latency['errors']}"
                    )


if __name__ == "__main__":
    main()
