"""Output options in the database on SQLite and PostgreSQL: migration 0003 both ways, and
options stored with a request and read back (a request from before reads as JPEG)."""

from __future__ import annotations

import io

from alembic import command
from sqlalchemy import inspect, text

from imgbatch.config import Settings
from imgbatch.csvfile import CsvLimits, open_csv
from imgbatch.db.engine import make_engine
from imgbatch.db.ingest import create_request
from imgbatch.db.migrate import alembic_config, upgrade
from imgbatch.db.reads import get_request, options_of
from imgbatch.options import OutputOptions
from tests.databases import database_url  # noqa: F401 (fixture)
from tests.helpers import csv_bytes

LIMITS = CsvLimits(max_rows=10, max_urls_per_row=10, max_url_length=2048, max_errors=10)
CSV = csv_bytes([(1, "SKU1", ["https://example.com/a.jpg"])])


def test_options_are_stored_with_the_request_and_read_back(database_url: str) -> None:  # noqa: F811
    engine = make_engine(database_url)
    chosen = OutputOptions(quality=70, format="avif", max_size=1024)
    create_request(
        engine, request_id="r1", reader=open_csv(io.BytesIO(CSV), LIMITS), options=chosen
    )
    settings = Settings(quality=40)
    assert options_of(engine, settings, request_id="r1") == chosen
    stored = get_request(engine, request_id="r1")
    assert stored is not None
    assert stored.options == {"quality": 70, "format": "avif", "max_size": 1024}
    engine.dispose()


def test_migration_adds_and_drops_the_options_column(database_url: str) -> None:  # noqa: F811
    engine = make_engine(database_url)
    config = alembic_config(database_url)
    create_request(engine, request_id="old", reader=open_csv(io.BytesIO(CSV), LIMITS))
    command.downgrade(config, "0002")
    columns = {column["name"] for column in inspect(engine).get_columns("requests")}
    assert "options" not in columns
    with engine.begin() as conn:  # the request survives the downgrade
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar() == 1
    upgrade(database_url)
    engine.dispose()
    engine = make_engine(database_url)
    columns = {column["name"] for column in inspect(engine).get_columns("requests")}
    assert "options" in columns
    # A request stored before options existed is what it was processed as: JPEG, full size.
    settings = Settings(quality=40)
    assert options_of(engine, settings, request_id="old") == OutputOptions(quality=40)
    engine.dispose()
