"""Scale-out on real services: Celery workers over Redis (and RabbitMQ), PostgreSQL, S3.

The API contract itself runs in scale-out mode in test_api.py (the ``mode`` fixture);
here are what only scale-out has: workers that die, a fair queue, another broker, and
the deployment's own commands (``imgbatch db upgrade``, ``serve --host 0.0.0.0``, ``worker``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from imgbatch.api import create_app
from imgbatch.config import Settings
from imgbatch.db.engine import make_engine, read_tx
from imgbatch.db.models import Image as ImageRow
from imgbatch.db.reads import get_request
from imgbatch.options import OutputOptions
from imgbatch.storage import image_key
from tests.databases import database_outage
from tests.helpers import IMGBATCH, TERMINAL, csv_bytes, free_port, wait_terminal, wait_until
from tests.modes import AMQP_URL, Backend, Fleet, Worker, aws_test_env
from tests.origin import Origin
from tests.s3server import MotoServer
from tests.services import REQUIRE_SERVICES, require_service

ROOT = Path(__file__).resolve().parent.parent

# The deployment's commands (Dockerfile, docker-compose.yml); the tests here run each one.
UPGRADE = ("imgbatch", "db", "upgrade")
SERVE = ("imgbatch", "serve", "--host", "0.0.0.0")
WORKER = ("imgbatch", "worker")


def distinct_photo_urls(origin: Origin, photos: list[Path], count: int, tag: str) -> list[str]:
    """``count`` different URLs (so none is deduplicated) over the photo corpus."""
    urls = []
    for i in range(count):
        path = f"/{tag}/{i}/{photos[i % len(photos)].name}"
        origin.serve_file(path, photos[i % len(photos)])
        urls.append(origin.url(path))
    return urls


def rows_of(urls: list[str], per_row: int = 4) -> list[tuple[int, str, list[str]]]:
    return [
        (n, f"SKU{n}", urls[i : i + per_row])
        for n, i in enumerate(range(0, len(urls), per_row), start=1)
    ]


def upload(client: TestClient | httpx.Client, urls: list[str]) -> str:
    body = csv_bytes(rows_of(urls))
    response = client.post("/api/v1/requests", files={"file": ("products.csv", body, "text/csv")})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status_of(client: TestClient | httpx.Client, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/requests/{request_id}").json()
    return body


def received(worker: Worker) -> set[str]:
    """The chunks (task ids) the worker has received so far."""
    log = worker.log.read_text(errors="replace")
    return set(re.findall(r"Task imgbatch\.process_chunk\[([0-9a-f-]+)\] received", log))


def busy(worker: Worker) -> bool:
    """The worker holds a chunk it has not finished (its log: received, not yet done)."""
    log = worker.log.read_text(errors="replace")
    done = set(re.findall(r"Task imgbatch\.process_chunk\[([0-9a-f-]+)\] (?:succeeded|retry)", log))
    return bool(received(worker) - done)


def downloading(worker: Worker, origin: Origin) -> bool:
    """A process of ``worker`` is fetching from ``origin`` (its chunk has started)."""
    return any(worker.process.pid in lineage for _, lineage in origin.peers)


def image_rows(database_url: str, request_id: str) -> list[tuple[int, str, str | None, int]]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with read_tx(engine) as conn:
            rows = conn.execute(
                select(ImageRow.seq, ImageRow.status, ImageRow.output_key, ImageRow.attempts)
                .where(ImageRow.request_id == request_id)
                .order_by(ImageRow.seq)
            ).all()
        return [(seq, status, key, attempts) for seq, status, key, attempts in rows]
    finally:
        engine.dispose()


def base_values(tmp_path: Path, origin: Origin, **overrides: Any) -> dict[str, Any]:
    return {
        "data_dir": tmp_path / "data",
        "allow_private_networks": f"127.0.0.1:{origin.port}",
        "fetch_retries": 0,
        **overrides,
    }


def test_killed_and_stopped_workers_lose_nothing_and_count_nothing_twice(
    scaleout: Backend,
    photo_origin: Origin,
    photos: list[Path],
    moto_server: MotoServer,
    tmp_path: Path,
) -> None:
    photo_origin.delay = 0.3  # chunks take a while, so a worker is caught mid-chunk and the
    # outage lands while work remains (a killed worker's leases come back at once now)
    values = base_values(tmp_path, photo_origin, lease_seconds=5, chunk_size=4, workers=1)
    first = scaleout.start_worker(values)
    second = scaleout.start_worker(values)
    urls = distinct_photo_urls(photo_origin, photos, 48, "chaos")
    with TestClient(create_app(scaleout.settings(values))) as client:
        request_id = upload(client, urls)
    # The API is gone: from here on only the workers dispatch and reap leases.

    # Mid-chunk: its chunk has started (an attempt is counted) and is downloading.
    photo_origin.track_peers = True
    wait_until(lambda: downloading(first, photo_origin), timeout=30, interval=0.02)
    first.kill()  # SIGKILL mid-chunk: its message and its claimed images are orphaned
    third = scaleout.start_worker(values)
    # The outage must meet a chunk that records during it. One received from now on
    # downloads for a second, so it records inside the outage, not just before it (a
    # chunk caught between its record and its log line, with none queued, met no outage).
    photo_origin.delay = 1.0
    before = received(second) | received(third)
    wait_until(lambda: received(second) | received(third) > before, timeout=30, interval=0.02)
    with database_outage(scaleout.database_url):
        time.sleep(2)  # chunks that finish now cannot record: they are tried again later
    photo_origin.delay = 0.3
    wait_until(lambda: busy(second), timeout=30, interval=0.02)
    # SIGTERM: a warm shutdown finishes the chunk it runs (one it holds but has not
    # started goes back to the queue) and exits cleanly.
    second.terminate()
    assert second.process.wait(timeout=30) == 0, second.log_tail()
    assert "Warm shutdown" in second.log.read_text(errors="replace")

    # Still no API: the workers alone recover the killed worker's chunk.
    engine = make_engine(scaleout.database_url, pool_size=1)
    try:
        wait_until(
            lambda: getattr(get_request(engine, request_id=request_id), "status", "") in TERMINAL,
            timeout=90,
        )
    finally:
        engine.dispose()
    assert third.process.poll() is None, third.log_tail()
    logs = second.log.read_text(errors="replace") + third.log.read_text(errors="replace")
    assert "OperationalError" in logs and " retry: Retry in " in logs
    with TestClient(create_app(scaleout.settings(values))) as client:
        final = status_of(client, request_id)
    assert final["status"] == "completed", final
    assert final["processed_images"] == final["total_images"] == 48
    assert final["failed_images"] == 0

    rows = image_rows(scaleout.database_url, request_id)
    assert {status for _, status, _, _ in rows} == {"succeeded"}
    assert [key for _, _, key, _ in rows] == [
        image_key(request_id, seq, OutputOptions()) for seq, _, _, _ in rows
    ]
    # The killed worker's chunk was handed out again, and still nothing was doubled.
    assert max(attempts for _, _, _, attempts in rows) >= 2
    expected = sorted(f"out/{image_key(request_id, seq, OutputOptions())}" for seq, _, _, _ in rows)
    assert scaleout.object_keys(moto_server.client) == expected


class PrivateRedis:
    """A Redis server of this test alone (never the machine's shared one), to restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: _listening(self.port), timeout=10, interval=0.02)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # and with it every queued message: it keeps nothing on disk
        self.process.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        message = "the redis-server program is needed to restart a broker"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def test_a_broker_restart_mid_request_delays_it_and_loses_nothing(
    scaleout: Backend,
    private_redis: PrivateRedis,
    photo_origin: Origin,
    photos: list[Path],
    moto_server: MotoServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="imgbatch.dispatch.upkeep")
    scaleout.broker_url = private_redis.url
    photo_origin.delay = 0.2
    # A window wider than the worker, so chunks wait in the queue when it goes down.
    values = base_values(
        tmp_path, photo_origin, lease_seconds=5, chunk_size=4, chunks_per_request=6, workers=2
    )
    worker = scaleout.start_worker(values)
    urls = distinct_photo_urls(photo_origin, photos, 80, "restart")
    with TestClient(create_app(scaleout.settings(values))) as client:
        request_id = upload(client, urls)
        wait_until(lambda: status_of(client, request_id)["processed_images"] > 0, timeout=30)
        private_redis.kill()  # the queue, and the messages in it, are gone
        time.sleep(3)  # longer than a send retries: dispatching into the outage fails
        private_redis.start()
        final = wait_terminal(client, request_id, timeout=90)
    assert worker.process.poll() is None, worker.log_tail()
    assert final["status"] == "completed", final
    assert final["processed_images"] == final["total_images"] == 80
    assert final["failed_images"] == 0
    rows = image_rows(scaleout.database_url, request_id)
    # The lost messages' chunks never started; their leases expired and were handed out
    # again (by the API's upkeep or the worker's).
    logs = caplog.text + worker.log.read_text(errors="replace")
    assert "lost messages out again" in logs
    expected = sorted(f"out/{image_key(request_id, seq, OutputOptions())}" for seq, _, _, _ in rows)
    assert scaleout.object_keys(moto_server.client) == expected


def test_a_killed_pool_process_hands_its_chunk_back_at_once(
    scaleout: Backend, photo_origin: Origin, photos: list[Path], tmp_path: Path
) -> None:
    photo_origin.delay = 0.5
    # Leases far longer than the test: only the message's redelivery can save the chunk.
    values = base_values(tmp_path, photo_origin, lease_seconds=600, chunk_size=4, workers=1)
    worker = scaleout.start_worker(values)
    urls = distinct_photo_urls(photo_origin, photos, 16, "child")
    with TestClient(create_app(scaleout.settings(values))) as client:
        request_id = upload(client, urls)
        wait_until(lambda: photo_origin.in_flight > 0, timeout=30, interval=0.02)
        (pool_process,) = psutil.Process(worker.process.pid).children()  # mid-download
        pool_process.kill()  # the process running the chunk dies; the worker lives on
        final = wait_terminal(client, request_id, timeout=30)
    assert final["status"] == "completed" and final["processed_images"] == 16, final
    assert "WorkerLostError" in worker.log.read_text(errors="replace")


def test_small_request_is_not_starved_by_a_big_one(
    scaleout: Backend, photo_origin: Origin, photos: list[Path], tmp_path: Path
) -> None:
    photo_origin.delay = 0.05
    values = base_values(tmp_path, photo_origin, chunk_size=4, chunks_per_request=2, workers=2)
    scaleout.start_worker(values)
    big_urls = distinct_photo_urls(photo_origin, photos, 160, "big")
    small_urls = distinct_photo_urls(photo_origin, photos, 4, "small")
    with TestClient(create_app(scaleout.settings(values))) as client:
        big = upload(client, big_urls)
        wait_until(lambda: status_of(client, big)["processed_images"] > 0, timeout=30)
        small = upload(client, small_urls)
        small_final = wait_terminal(client, small)
        big_then = status_of(client, big)
        big_final = wait_terminal(client, big, timeout=120)

    assert small_final["status"] == big_final["status"] == "completed"
    # Submitted after the big one had started, the small one overtook it by far.
    assert big_then["status"] == "processing" and big_then["progress"] < 0.5, big_then
    assert small_final["finished_at"] < big_final["finished_at"]


@pytest.fixture
def amqp_backend(scaleout_fleet: Fleet) -> Iterator[Backend]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    backend = scaleout_fleet.backend(AMQP_URL, migrate=False)
    yield backend
    backend.stop_workers()


def test_deployment_commands_over_rabbitmq(
    amqp_backend: Backend, photo_origin: Origin, photos: list[Path], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values = base_values(tmp_path, photo_origin, public_url=base, workers=1)
    env = amqp_backend.worker_env(values)
    # The commands the compose file runs, in its order: migrate, then API and worker.
    subprocess.run([IMGBATCH, *UPGRADE[1:]], env=env, check=True, capture_output=True)
    worker = amqp_backend.start_worker(values)
    assert worker.process.args == [IMGBATCH, *WORKER[1:]]
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [IMGBATCH, *SERVE[1:], "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_until(lambda: _answers(client), timeout=30)
            urls = distinct_photo_urls(photo_origin, photos, 3, "amqp")
            request_id = upload(client, urls)
            final = wait_terminal(client, request_id)
            assert final["status"] == "completed" and final["processed_images"] == 3, final
            item = client.get(f"/api/v1/requests/{request_id}/products").json()["items"][0]
            output_url = item["images"][0]["output_url"]
            assert output_url.startswith(amqp_backend.s3_endpoint_url)  # presigned, on S3
            jpeg = httpx.get(output_url)
            assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
            out = client.get(final["output_csv_url"].removeprefix(base))
            assert out.status_code == 200 and output_url.split("?")[0] in out.text
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False


def test_worker_refuses_to_start_without_a_broker(tmp_path: Path) -> None:
    env = {**aws_test_env(), "IMGBATCH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([IMGBATCH, "worker"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    assert b"IMGBATCH_BROKER_URL" in result.stderr


def test_deployment_files_run_only_the_tested_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ours = {name: svc for name, svc in compose["services"].items() if "imgbatch" in svc["image"]}
    commands = {name: tuple(svc["command"].split()) for name, svc in ours.items()}
    assert commands == {"migrate": UPGRADE, "api": SERVE, "worker": WORKER}
    assert ours["worker"]["deploy"]["replicas"] == 2
    default = re.search(r"^CMD (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert default is not None and tuple(json.loads(default.group(1))) == SERVE
    # Every variable they set is a setting imgbatch reads (a typo would be ignored silently).
    names = {name for svc in ours.values() for name in svc["environment"]}
    fields = {f"IMGBATCH_{field.upper()}" for field in Settings.model_fields}
    assert {name for name in names if name.startswith("IMGBATCH_")} <= fields
