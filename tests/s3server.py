"""moto's S3 server on 127.0.0.1 for tests: a real HTTP endpoint, no mocks in the process.

Its fixtures are registered for every test by ``pytest_plugins`` in ``tests/conftest.py``.
``moto_server`` starts once per session (about a second); ``moto_s3`` gives each test a fresh,
empty bucket and the AWS test credentials in the environment, so code under test that
builds its own boto3 client (from the standard credential chain) talks to moto too.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_bucket_numbers = itertools.count(1)


@dataclass
class MotoServer:
    endpoint_url: str

    @cached_property
    def client(self) -> S3Client:
        """One client for the session: building one costs ~0.1 s."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"],
        )


@dataclass(frozen=True)
class MotoS3:
    endpoint_url: str
    bucket: str
    client: S3Client

    def keys(self, prefix: str = "") -> list[str]:
        listing: Any = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    # Imported here so that importing these fixtures into conftest costs nothing (~0.3 s).
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    # Port 0: the OS picks a free port, so parallel runs never collide; loopback only.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield MotoServer(endpoint_url=f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def moto_s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """A fresh bucket on the session's moto server, with test credentials in the environment."""
    # Hermetic: no profile, endpoint override or shared file of the machine leaks in.
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Never ask an instance-metadata address for credentials, whatever else is configured.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = moto_server.client
    bucket = f"imgbatch-test-{next(_bucket_numbers)}"
    client.create_bucket(Bucket=bucket)
    return MotoS3(endpoint_url=moto_server.endpoint_url, bucket=bucket, client=client)
