"""Scale-out throughput: images/s with one and with two Celery worker processes.

Everything real and on loopback: PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379),
moto's S3 server and an image origin in their own processes, ``imgbatch serve`` as the
API (it only dispatches), and ``imgbatch worker --concurrency 1`` processes. Each run has
a fresh database, queue and bucket; the clock runs from the upload to the terminal status
of one request of distinct URLs over the photo corpus, with the workers already up.

    .venv/bin/python -m bench.scaleout [--images N] [--chunks-per-request W]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx

from bench.codecs import plain_pillow
from bench.common import (
    IMGBATCH,
    bench_env,
    csv_text,
    distinct_urls,
    free_port,
    live_server,
    origin,
    postgres_database,
    upload,
    wait_http,
    wait_terminal,
)
from bench.throughput import ceiling

IMAGES = 480
PER_ROW = 4
REDIS_URL = "redis://127.0.0.1:6379/0"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in its own process; yields its endpoint URL."""
    port = free_port()
    moto = str(Path(sys.executable).with_name("moto_server"))
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/moto-api/")
        yield endpoint
    finally:
        process.terminate()
        process.wait()


@dataclass
class Stack:
    """One run's back end: database, queue and bucket, as ``IMGBATCH_*`` variables."""

    env: dict[str, str]
    data_dir: Path


@contextmanager
def stack(s3_endpoint: str, chunks_per_request: int) -> Iterator[Stack]:
    token = uuid.uuid4().hex[:12]
    bucket = f"imgbatch-bench-{token}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=bucket)
    with postgres_database() as database_url, tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {
            **AWS,
            "IMGBATCH_DATABASE_URL": database_url,
            "IMGBATCH_BROKER_URL": REDIS_URL,
            "IMGBATCH_CELERY_QUEUE": f"imgbatch-bench-{token}",
            "IMGBATCH_STORAGE_URL": f"s3://{bucket}/out",
            "IMGBATCH_S3_ENDPOINT_URL": s3_endpoint,
            "IMGBATCH_CHUNKS_PER_REQUEST": str(chunks_per_request),
        }
        subprocess.run(
            [IMGBATCH, "db", "upgrade"],
            env=bench_env(data_dir, **env),
            check=True,
            capture_output=True,
        )
        yield Stack(env, data_dir)


@contextmanager
def worker(run: Stack, index: int) -> Iterator[None]:
    """``imgbatch worker --concurrency 1``, returned once it is ready for tasks."""
    log = run.data_dir / f"worker-{index}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [IMGBATCH, "worker", "--concurrency", "1"],
            env=bench_env(run.data_dir / f"worker-{index}", **run.env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait()


def rate(base: str, s3_endpoint: str, workers: int, images: int, window: int) -> float:
    with stack(s3_endpoint, window) as run, ExitStack() as running:
        for index in range(workers):
            running.enter_context(worker(run, index))
        server = running.enter_context(live_server(run.data_dir / "api", **run.env))
        urls = distinct_urls(base, images)
        body = csv_text([urls[i : i + PER_ROW] for i in range(0, images, PER_ROW)])
        with httpx.Client() as client:
            started = time.perf_counter()
            request = upload(client, server.url, body)
            final = wait_terminal(client, server.url, str(request["request_id"]), poll=0.05)
            elapsed = time.perf_counter() - started
        if final["status"] != "completed" or final["processed_images"] != images:
            raise RuntimeError(f"the request did not complete: {final}")
        return images / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument(
        "--chunks-per-request", type=int, default=2, help="the per-request window (default 2)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per figure; the best counts (default 2)"
    )
    args = parser.parse_args(argv)
    window = args.chunks_per_request
    print(
        f"\n== Scale-out: {args.images} distinct URLs, Celery/Redis + PostgreSQL + moto S3, "
        f"window {window} chunks, {os.cpu_count()} cores, best of {args.repeat} =="
    )
    cpu = ceiling(plain_pillow).rate
    print(f"CPU ceiling (process pool, no network): {cpu:6.1f} images/s")
    with origin() as base, moto_server() as s3:
        rate(base, s3, 1, 32, window)  # warm the caches and the origin up
        rates = {}
        for workers in (1, 2):
            rates[workers] = max(
                rate(base, s3, workers, args.images, window) for _ in range(args.repeat)
            )
            label = "process " if workers == 1 else "processes"
            print(
                f"{workers} worker {label}: {rates[workers]:6.1f} images/s "
                f"({rates[workers] / cpu:.0%} of the CPU ceiling)"
            )
    print(f"ratio (2 / 1)        : {rates[2] / rates[1]:6.2f}")
    # The figures are only as steady as the machine: other work on it shows here.
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
