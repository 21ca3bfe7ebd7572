"""The deployment files: the compose file validates with the compose CLI and runs a
sample flow that can work, and the Dockerfile installs dependencies before the code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SECRET = "whsec_" + "A" * 43 + "="


def compose_command() -> list[str]:
    """`docker compose` or Debian's `docker-compose` (``make compose`` installs it)."""
    if (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return ["docker", "compose"]
    if found := shutil.which("docker-compose"):
        return [found]
    message = "no compose CLI: `make compose` installs Debian's docker-compose"
    if os.environ.get("IMGBATCH_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def compose_config(tmp_path: Path, env: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / ".env"
    env_file.write_text(env)
    variables = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=variables,
        cwd=tmp_path,
        check=False,
    )


def test_compose_file_is_valid_and_takes_the_secret_from_the_env_file(tmp_path: Path) -> None:
    rendered = compose_config(tmp_path, f"IMGBATCH_WEBHOOK_SECRET={SECRET}\n")
    assert rendered.returncode == 0, rendered.stderr
    config: dict[str, Any] = yaml.safe_load(rendered.stdout)
    services = config["services"]
    for name in ("api", "worker", "migrate"):
        assert services[name]["environment"]["IMGBATCH_WEBHOOK_SECRET"] == SECRET
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])

    # The sample CSV's photos come from an address the workers may fetch.
    env = services["worker"]["environment"]
    sample_host = env["IMGBATCH_SAMPLE_BASE_URL"].removeprefix("http://")
    assert sample_host in env["IMGBATCH_ALLOW_PRIVATE_NETWORKS"].split(",")
    assert sample_host.split(":")[0] in services


def test_compose_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    rendered = compose_config(tmp_path, "")
    assert rendered.returncode != 0
    assert "IMGBATCH_WEBHOOK_SECRET" in rendered.stderr


def test_sample_photo_urls_follow_the_sample_base_url(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from imgbatch.api import create_app
    from imgbatch.config import Settings

    settings = Settings(data_dir=tmp_path, sample_base_url="http://api:8000")
    with TestClient(create_app(settings, work=False)) as client:
        sample = client.get("/api/v1/sample.csv").text
    assert "http://api:8000/samples/chelsea.jpg" in sample


def test_dockerfile_installs_dependencies_before_copying_the_code() -> None:
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = [line for line in joined.splitlines() if line[:1].isupper()]
    code = steps.index("COPY imgbatch ./imgbatch")
    installs = [i for i, step in enumerate(steps) if "pip install --constraint" in step]
    assert installs and installs[0] < code, "dependencies must be installed before the code"
    assert steps[0].startswith("FROM python:3.11.") and "latest" not in steps[0]
