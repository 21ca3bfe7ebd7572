"""A fresh database per test on SQLite and on PostgreSQL (127.0.0.1:5432), and the one
place test databases are created and dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from imgbatch.db.engine import make_engine
from imgbatch.db.migrate import upgrade
from tests.services import require_service

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def database_outage(database_url: str) -> Iterator[None]:
    """What a PostgreSQL restart does to the workers: every connection cut, and new ones
    refused until it is back (only this test's database, never the shared server)."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def fresh_postgres_url() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"imgbatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'imgbatch.db'}"
        upgrade(url)
        yield url
        return
    for url in fresh_postgres_url():
        upgrade(url)
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on each kind of fresh database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
