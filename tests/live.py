"""A live imgbatch server for tests that need a real one (a browser, an HTTP client run
outside the process), and the headless Chromium those tests drive.

``live_server(data_dir)`` starts ``imgbatch serve`` as a subprocess on a free loopback port
with a fresh data dir, waits for ``/healthz`` and stops it after. The server may fetch
from itself (the sample CSV points at photos it hosts) and from any ``allow`` entries.
The ``live`` fixture (registered in ``tests/conftest.py``) is one such server per test
module::

    def test_something(live: LiveServer) -> None:
        httpx.get(live.url("/healthz"))
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import IMGBATCH, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

REQUIRE_SERVICES = os.environ.get("IMGBATCH_REQUIRE_SERVICES") == "1"
CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (CI runs as root); nothing in the background may reach beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    port: int
    data_dir: Path
    log: Path
    pid: int

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.contextmanager
def live_server(
    data_dir: Path,
    *,
    allow: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    workers: int = 2,
    start_timeout: float = 30,
) -> Iterator[LiveServer]:
    """Run ``imgbatch serve`` until the block ends. ``env`` adds or overrides variables; the
    caller's own ``IMGBATCH_*`` variables are not passed on, so the server is the same
    everywhere."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    variables = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
    variables.update(
        IMGBATCH_DATA_DIR=str(data_dir),
        IMGBATCH_PUBLIC_URL=base_url,
        IMGBATCH_ALLOW_PRIVATE_NETWORKS=",".join([f"127.0.0.1:{port}", *allow]),
        IMGBATCH_WORKERS=str(workers),
    )
    variables.update(env or {})
    log = data_dir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [IMGBATCH, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=variables,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker processes go down with it
        )
    try:
        _wait_healthy(process, base_url, log, start_timeout)
        yield LiveServer(base_url=base_url, port=port, data_dir=data_dir, log=log, pid=process.pid)
    finally:
        _stop(process)


def _wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"imgbatch serve exited ({process.returncode}):\n{_tail(log)}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"imgbatch serve did not answer within {timeout} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    # Whatever it left behind in its own session (worker processes) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server per test module, on its own data dir."""
    with live_server(tmp_path_factory.mktemp("live")) as server:
        yield server


def require_chromium() -> Path:
    """Debian's Chromium (``make browser`` installs it): skip without it on a laptop, fail
    under IMGBATCH_REQUIRE_SERVICES=1."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing; `make browser` installs it"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
