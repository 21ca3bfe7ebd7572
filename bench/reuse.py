"""Re-runs (SPEC §9): the same catalogue uploaded again, against its first upload.

Three cases, each a fresh ``imgbatch serve`` and 600 images that are all different
inputs (``/u/<n>/…``: no image is reused within the first upload):

- ``max-age``: a 50 ms origin answering ``Cache-Control: max-age=3600``; the second
  upload must not reach the origin at all.
- ``no-cache + ETag``: the same origin answering ``no-cache``: every image of the second
  upload is revalidated, and every answer is a 304.
- ``new URLs``: a 0 ms origin; the second upload names other URLs (``/v/<n>/…``) for the
  same bytes: downloaded and hashed, never decoded.

Both uploads of a case run with the same settings. The per-host download limit is raised
to 64 for this loopback origin, so the 50 ms round trips of the revalidation are not
queued eight at a time behind the politeness limit meant for real origins.

Then the price of giving a reused image its own object: a hard link on local storage, a
server-side CopyObject on S3 (moto), each beside a plain put of the same bytes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import boto3
import httpx

from bench.common import csv_text, live_server, origin, photo_names, upload, wait_terminal
from bench.scaleout import AWS, moto_server
from imgbatch.options import OutputOptions
from imgbatch.storage import LocalStorage, Storage, image_key
from imgbatch.storage.s3 import S3Storage

IMAGES = 600
PER_ROW = 4
SETTINGS = {"IMGBATCH_FETCH_PER_HOST": "64"}


def urls(base: str, prefix: str) -> list[str]:
    names = photo_names()
    return [f"{base}/{prefix}/{i}/{names[i % len(names)]}" for i in range(IMAGES)]


def rows(all_urls: Sequence[str]) -> list[Sequence[str]]:
    return [all_urls[i : i + PER_ROW] for i in range(0, len(all_urls), PER_ROW)]


def timed_upload(client: httpx.Client, server: str, body: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    request = upload(client, server, body)
    final = wait_terminal(client, server, str(request["request_id"]), poll=0.05)
    assert final["status"] == "completed", final
    return time.perf_counter() - started, final


def origin_hits(client: httpx.Client, base: str) -> int:
    return int(client.get(f"{base}/_hits").text)


def case(name: str, *, delay_ms: float, cache_control: str | None, second_prefix: str) -> None:
    with (
        origin(delay_ms=delay_ms, cache_control=cache_control) as base,
        live_server(**SETTINGS) as server,
        httpx.Client(timeout=60) as client,
    ):
        first_seconds, first = timed_upload(client, server.url, csv_text(rows(urls(base, "u"))))
        before = origin_hits(client, base)
        second_body = csv_text(rows(urls(base, second_prefix)))
        second_seconds, second = timed_upload(client, server.url, second_body)
        asked = origin_hits(client, base) - before
    print(
        f"{name:>20} | {first_seconds:7.2f}s {second_seconds:7.2f}s "
        f"{first_seconds / second_seconds:6.1f}× | {second['reused_images']:>6} {asked:>7} "
        f"| {first['reused_images']}"
    )


def copy_costs(repeat: int = 200) -> None:
    data = (Path(__file__).resolve().parent.parent / "tests/data/photos").glob("*.jpg")
    body = next(iter(sorted(data))).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        print(_costs("local", LocalStorage(Path(tmp), public_url="http://x"), body, repeat))
    os.environ.update(AWS)  # moto's test credentials, and none of this machine's
    with moto_server() as endpoint:
        bucket = "imgbatch-bench-reuse"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        s3 = S3Storage(bucket, "out", endpoint_url=endpoint)
        print(_costs("S3 (moto)", s3, body, repeat // 4))
        s3.close()


def _costs(name: str, storage: Storage, body: bytes, repeat: int) -> str:
    """Seconds per put of ``body``, and per copy of a stored one, on ``storage``."""

    def key(n: int) -> str:
        return image_key("00000000-0000-4000-8000-000000000000", n, OutputOptions())

    storage.put(key(0), body)
    started = time.perf_counter()
    for i in range(1, repeat + 1):
        storage.put(key(i), body)
    put = (time.perf_counter() - started) / repeat
    started = time.perf_counter()
    for i in range(1, repeat + 1):
        assert storage.copy(key(0), key(repeat + i))
    copy = (time.perf_counter() - started) / repeat
    return (
        f"{name:>20} | put {put * 1000:6.2f} ms | copy {copy * 1000:6.2f} ms "
        f"| {len(body) / 1000:.0f} kB, {repeat} each"
    )


def main() -> None:
    print(f"\n== Re-runs: {IMAGES} different inputs uploaded twice (first vs second) ==")
    print(
        f"{'case':>20} | {'first':>8} {'second':>8} {'ratio':>7} "
        f"| {'reused':>6} {'origin':>7} | first reused"
    )
    case("max-age=3600", delay_ms=50, cache_control="max-age=3600", second_prefix="u")
    case("no-cache + ETag", delay_ms=50, cache_control="no-cache", second_prefix="u")
    case("same bytes, new URLs", delay_ms=0, cache_control=None, second_prefix="v")
    print("\n== The reused image's own object: copy against put ==")
    copy_costs()


if __name__ == "__main__":
    main()
