"""The migrations build the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from imgbatch.db.migrate import HEAD, alembic_config, current_revision
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


def test_head_is_the_newest_migration_and_a_migrated_database_is_at_it(
    database_url: str,  # noqa: F811
) -> None:
    # ``upgrade`` skips Alembic for a database at HEAD: HEAD must be the scripts' own head.
    config = alembic_config(database_url)
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]
    assert current_revision(database_url) == HEAD
