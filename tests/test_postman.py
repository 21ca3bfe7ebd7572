"""docs/postman_collection.json, run by newman against a live ``imgbatch serve``.

Every request of the collection must run and every one of its assertions pass: the
collection is documentation that a client outside Python can execute.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, live_server
from tests.services import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "docs" / "postman_collection.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"


def newman_command() -> list[str]:
    if shutil.which("node") and NEWMAN.exists():
        return [str(NEWMAN)]
    message = "newman is not installed: run `npm ci` (make test does) with node on the PATH"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (IMGBATCH_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "data") as running:
        yield running


def request_names(items: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in items:
        names += request_names(item["item"]) if "item" in item else [item["name"]]
    return names


def test_the_collection_passes_against_a_live_server(server: LiveServer, tmp_path: Path) -> None:
    newman = newman_command()
    # The upload sends `csvFile` (sample.csv), relative to newman's working dir.
    sample = httpx.get(f"{server.base_url}/api/v1/sample.csv", timeout=10)
    (tmp_path / "sample.csv").write_bytes(sample.content)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            *newman,
            "run",
            str(COLLECTION),
            "--working-dir",
            str(tmp_path),
            "--env-var",
            f"baseUrl={server.base_url}",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
            "--timeout",
            "120000",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]

    run = json.loads(report.read_text())["run"]
    assert run["failures"] == []
    assert run["stats"]["assertions"]["failed"] == 0
    executed = {execution["item"]["name"] for execution in run["executions"]}
    expected = request_names(json.loads(COLLECTION.read_text())["item"])
    assert executed == set(expected)
    # Each request asserts its status code, and most assert fields too.
    assert run["stats"]["assertions"]["total"] >= 2 * len(expected)
