"""Real services the tests use: skipped on a laptop without them, required on CI."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("IMGBATCH_REQUIRE_SERVICES") == "1"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent on a laptop; fail under IMGBATCH_REQUIRE_SERVICES=1."""
    if service_reachable(host, port):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} on {host}:{port} is required (IMGBATCH_REQUIRE_SERVICES=1)")
    pytest.skip(f"{name} on {host}:{port} is not running")
