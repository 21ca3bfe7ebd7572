"""A fresh database per test on SQLite and on PostgreSQL (127.0.0.1:5432), and the one
place test databases are created and dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from imgbatch.db.engine import make_engine
from imgbatch.db.migrate import upgrade
from tests.services import require_service

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


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
