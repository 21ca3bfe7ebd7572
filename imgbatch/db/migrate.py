"""Apply Alembic migrations (``imgbatch db upgrade``; ``serve`` and ``run`` do it for
embedded SQLite at every start).

Alembic (with Mako and Pygments: about 0.1 s of every command's start) is imported only
when a migration is to run: a database already at ``HEAD`` is told apart by one read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from imgbatch.db.engine import normalise_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

# The newest revision in ``migrations/versions``; tests/test_schema.py checks it against
# Alembic's own reading of the scripts, so a new migration cannot forget it.
HEAD = "0008"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on a % in a password.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None when it has none (new, or not migrated)."""
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no such table (yet)
    finally:
        engine.dispose()
    return None if revision is None else str(revision)


def upgrade(database_url: str, revision: str = "head") -> None:
    if revision == "head" and current_revision(database_url) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)
