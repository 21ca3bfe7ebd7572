"""Where the service under test does its work: ``embedded`` (in the API's own process) or
``scaleout`` (``imgbatch worker`` subprocesses over Redis, PostgreSQL and S3 on moto).

A test that takes the ``mode`` fixture runs once per mode. ``mode.settings(values)`` turns
the test's settings into that mode's; in scale-out it also starts workers with exactly
those settings (the origin's port is among them). ``get_output`` fetches an output image
wherever it is hosted: through the app when storage is local, over HTTP from S3.

Each scale-out test has its own PostgreSQL database, Celery queue and bucket, so nothing
crosses between tests or between test runs sharing this machine's services. Workers start
in the background while the app starts (queued chunks wait for them), and stop with a warm
shutdown after the test; the session cleans up once they have exited.

The fixtures are registered for every test by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from fastapi.testclient import TestClient

from imgbatch.config import Settings
from imgbatch.db.migrate import upgrade
from tests.databases import fresh_postgres_url
from tests.helpers import IMGBATCH
from tests.s3server import REGION, TEST_CREDENTIALS, MotoServer
from tests.services import require_service

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
LOCAL_BASE = "http://127.0.0.1:8000"  # IMGBATCH_PUBLIC_URL's default


def aws_test_env() -> dict[str, str]:
    """Credentials for moto and nothing of the machine's own AWS set-up (see s3server)."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def get_output(client: TestClient, url: str, **kwargs: Any) -> httpx.Response:
    """GET an output image: through the app when it serves the files, else over HTTP."""
    if url.startswith(LOCAL_BASE):
        response: httpx.Response = client.get(url.removeprefix(LOCAL_BASE), **kwargs)
        return response
    return httpx.get(url, timeout=10, **kwargs)


def env_of(values: Mapping[str, Any]) -> dict[str, str]:
    """Settings values as the ``IMGBATCH_*`` variables a worker reads."""
    return {f"IMGBATCH_{name.upper()}": str(value) for name, value in values.items()}


class Mode(Protocol):
    name: str

    def settings(self, values: dict[str, Any]) -> Settings: ...


class Embedded:
    name = "embedded"

    def settings(self, values: dict[str, Any]) -> Settings:
        return Settings(**values)


@dataclass
class Worker:
    """One ``imgbatch worker`` process (and its pool processes, in their own group)."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole worker at once, as a crashed machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        """SIGTERM the main process: a warm shutdown finishes the chunks it runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Backend:
    """One test's scale-out back end: a database, a queue, a bucket, and its workers."""

    database_url: str
    broker_url: str
    queue: str
    bucket: str
    s3_endpoint_url: str
    workdir: Path
    workers: list[Worker] = field(default_factory=list)

    def infrastructure(self) -> dict[str, Any]:
        return {
            "database_url": self.database_url,
            "broker_url": self.broker_url,
            "celery_queue": self.queue,
            "storage_url": f"s3://{self.bucket}/out",
            "s3_endpoint_url": self.s3_endpoint_url,
        }

    def settings(self, values: Mapping[str, Any]) -> Settings:
        return Settings(**{**values, **self.infrastructure()})

    def worker_env(self, values: Mapping[str, Any]) -> dict[str, str]:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("IMGBATCH_", "AWS_"))
        }
        values = {"data_dir": self.workdir / "worker-data", **values, **self.infrastructure()}
        return {**inherited, **aws_test_env(), **env_of(values)}

    def start_worker(self, values: Mapping[str, Any], *, concurrency: int | None = None) -> Worker:
        log = self.workdir / f"worker-{len(self.workers) + 1}.log"
        command = [IMGBATCH, "worker"]
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                env=self.worker_env(values),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole
            )
        worker = Worker(process, log)
        self.workers.append(worker)
        return worker

    def object_keys(self, client: Any) -> list[str]:
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()


class Fleet:
    """Every back end of the session; cleaned up once its workers have exited."""

    def __init__(self, moto: MotoServer, root: Path) -> None:
        self.moto = moto
        self.root = root
        self._cleanups: list[tuple[Backend, Iterator[str]]] = []

    def backend(self, broker_url: str = REDIS_URL, *, migrate: bool = True) -> Backend:
        database = fresh_postgres_url()
        url = next(database)
        if migrate:
            upgrade(url)
        token = uuid.uuid4().hex[:12]
        bucket = f"imgbatch-scaleout-{token}"
        self.moto.client.create_bucket(Bucket=bucket)
        workdir = self.root / token
        workdir.mkdir(parents=True)
        backend = Backend(
            database_url=url,
            broker_url=broker_url,
            queue=f"imgbatch-test-{token}",
            bucket=bucket,
            s3_endpoint_url=self.moto.endpoint_url,
            workdir=workdir,
        )
        self._cleanups.append((backend, database))
        return backend

    def close(self) -> None:
        for backend, _ in self._cleanups:
            backend.stop_workers()
        for backend, database in self._cleanups:
            for worker in backend.workers:
                try:
                    worker.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
            # A test's own broker may be gone with its test: then there is nothing to clean.
            with contextlib.suppress(Exception):
                _delete_queue(backend.broker_url, backend.queue)
            next(database, None)  # drops the database


def _delete_queue(broker_url: str, queue: str) -> None:
    """Remove a test's queue, and messages of killed workers waiting to be restored to it."""
    if broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker_url)
        client.delete(queue, f"_kombu.binding.{queue}")
        for tag, payload in client.hscan_iter("unacked"):
            if json.loads(payload)[-1] == queue:  # [message, exchange, routing key]
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.close()
        return
    from kombu import Connection  # type: ignore[attr-defined]

    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        connection.default_channel.queue_delete(queue)


@pytest.fixture(name="scaleout_fleet", scope="session")
def scaleout_fleet_fixture(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    fleet = Fleet(moto_server, tmp_path_factory.mktemp("scaleout"))
    yield fleet
    fleet.close()


def require_scaleout_services() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture(name="scaleout")
def scaleout_fixture(scaleout_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """A fresh scale-out back end on Redis; its workers stop after the test."""
    require_scaleout_services()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_test_env().items():  # the app in this process talks to moto too
        monkeypatch.setenv(name, value)
    backend = scaleout_fleet.backend()
    yield backend
    backend.stop_workers()


class ScaleOut:
    """Celery workers started with the test's own settings, one group per distinct set.

    A test that starts the service again with other settings gets new workers (as a
    redeploy would); the old ones shut down warm and their chunks are not lost.
    """

    name = "scaleout"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._running: dict[str, Any] | None = None

    def settings(self, values: dict[str, Any]) -> Settings:
        worker_values = {k: v for k, v in values.items() if k != "data_dir"}
        if worker_values != self._running:
            self.backend.stop_workers()
            self.backend.start_worker(worker_values)
            self._running = worker_values
        return self.backend.settings(values)


@pytest.fixture(name="mode", params=["embedded", "scaleout"])
def mode_fixture(request: pytest.FixtureRequest) -> Mode:
    """Run the test in each mode; scale-out skips on a laptop without the services."""
    if request.param == "embedded":
        return Embedded()
    require_scaleout_services()
    backend: Backend = request.getfixturevalue("scaleout")
    return ScaleOut(backend)
