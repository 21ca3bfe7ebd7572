"""What the benchmarks share: free ports, an origin process, a live server, RSS sampling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.origin import PHOTOS

ROOT = Path(__file__).resolve().parent.parent
IMGBATCH = str(Path(sys.executable).with_name("imgbatch"))
TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database on 127.0.0.1 for one run, dropped after."""
    name = f"imgbatch_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def origin(
    delay_ms: float = 0, extra: Path | None = None, cache_control: str | None = None
) -> Iterator[str]:
    """An image origin in its own process; yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "bench.origin", "--port", str(port), "--delay-ms", str(delay_ms)]
    if extra is not None:
        args += ["--extra", str(extra)]
    if cache_control is not None:
        args += ["--cache-control", cache_control]
    process = subprocess.Popen(args, cwd=ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/p/0/none.jpg")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def photo_names() -> list[str]:
    return sorted(p.name for p in PHOTOS.glob("*.jpg"))


def csv_text(urls_per_row: Sequence[Sequence[str]]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [f'{i},SKU{i},"{",".join(urls)}"' for i, urls in enumerate(urls_per_row, start=1)]
    return "\n".join(lines) + "\n"


def distinct_urls(base: str, count: int, names: Sequence[str] | None = None) -> list[str]:
    """``count`` different inputs: other URLs *and* other bytes (``/u/``), so none of them
    is reused from another by the re-run cache's content hash (SPEC §9)."""
    names = names or photo_names()
    return [f"{base}/u/{i}/{names[i % len(names)]}" for i in range(count)]


def bench_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
    env.update(IMGBATCH_DATA_DIR=str(data_dir), IMGBATCH_ALLOW_PRIVATE_NETWORKS="127.0.0.0/8")
    env.update(extra)
    return env


@dataclass
class RssSampler:
    """Peak memory of a process: its RSS alone, and the PSS of it plus its children.

    PSS (proportional set size) counts a page shared by n processes as 1/n in each, so
    the tree's sum is the memory it really holds; a sum of RSS would count the code the
    worker processes share with their forkserver once per process.
    """

    pid: int
    interval: float = 0.1
    peak_main: int = 0
    peak_tree: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            process = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                main = process.memory_info().rss
                tree = sum(
                    p.memory_full_info().pss for p in (process, *process.children(recursive=True))
                )
            except psutil.Error:
                break
            self.peak_main = max(self.peak_main, main)
            self.peak_tree = max(self.peak_tree, tree)
            time.sleep(self.interval)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path


@contextmanager
def live_server(data_dir: Path | None = None, **env: str) -> Iterator[LiveServer]:
    """``imgbatch serve`` on a free port, as a user would run it."""
    with tempfile.TemporaryDirectory() as tmp:
        data = data_dir or Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        environment = bench_env(data, IMGBATCH_PUBLIC_URL=url, **env)
        process = subprocess.Popen(
            [IMGBATCH, "serve", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{url}/healthz")
            yield LiveServer(url, process, data)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def upload(client: httpx.Client, base: str, body: str | bytes) -> dict[str, object]:
    response = client.post(
        f"{base}/api/v1/requests", files={"file": ("bench.csv", body, "text/csv")}, timeout=300
    )
    response.raise_for_status()
    result: dict[str, object] = response.json()
    return result


def wait_terminal(
    client: httpx.Client, base: str, request_id: str, poll: float = 0.1
) -> dict[str, object]:
    while True:
        body: dict[str, object] = client.get(f"{base}/api/v1/requests/{request_id}").json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(poll)


def mb(n: int) -> str:
    return f"{n / 1_000_000:.0f} MB"
