"""A real ``imgbatch serve`` in a subprocess on a free loopback port, for clients that are
not Python (newman) and for the docs' captured examples.

The server fetches from itself (the sample CSV points at ``/samples/*.jpg``), so its own
``host:port`` is allowed; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    port: int
    data_dir: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def imgbatch_command() -> str:
    """The console script of the running interpreter's environment (the project's venv)."""
    beside = Path(sys.executable).with_name("imgbatch")
    found = str(beside) if beside.exists() else shutil.which("imgbatch")
    if found is None:
        raise RuntimeError("the imgbatch console script is not installed")
    return found


@contextmanager
def live_server(
    data_dir: Path,
    *,
    port: int | None = None,
    allow: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """Serve on 127.0.0.1 until the block ends. ``allow`` adds ``host:port`` entries (or
    CIDRs) the server may fetch from; ``env`` sets more ``IMGBATCH_*`` variables."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Only the variables given here: a developer's own IMGBATCH_BROKER_URL must not leak in.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
    environ.update(
        IMGBATCH_DATA_DIR=str(data_dir),
        IMGBATCH_PUBLIC_URL=base_url,
        IMGBATCH_ALLOW_PRIVATE_NETWORKS=",".join([f"127.0.0.1:{port}", *allow]),
        IMGBATCH_WORKERS="2",
    )
    environ.update(env or {})
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [imgbatch_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(base_url, process, log)
        yield LiveServer(base_url=base_url, port=port, data_dir=data_dir, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"imgbatch serve exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"imgbatch serve did not answer within {START_TIMEOUT} s:\n{log.read_text()}"
    )
