"""The migrations build the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from imgbatch.db.models import Base
from tests.databases import database_url  # noqa: F401  (a fixture)


def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:  # noqa: F811
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
