"""The re-run cache in the database: look up what a URL or an input produced, and record
what a chunk did, in the same transaction as the chunk's results.

Recording is an upsert (``INSERT … ON CONFLICT DO UPDATE``), so two requests that
download the same new URL or bytes at once leave one row each, and neither fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from imgbatch.db.engine import read_tx, utcnow
from imgbatch.db.models import InputOutput, UrlCache
from imgbatch.reuse.freshness import CachePolicy


@dataclass(frozen=True)
class Output:
    """An output made from some input bytes under some options."""

    input_sha256: str
    input_bytes: int
    output_key: str
    output_bytes: int


@dataclass(frozen=True)
class UrlEntry:
    """What a URL returned last time, under one options key."""

    policy: CachePolicy
    output: Output

    def fresh(self, now: datetime) -> bool:
        return self.policy.fresh_until is not None and now < self.policy.fresh_until


@dataclass(frozen=True)
class CacheRecord:
    """What to remember of one image: the URL's response (unless it may not be stored)
    and the output its bytes produced."""

    url: str
    options_key: str
    policy: CachePolicy
    output: Output


def url_sha256(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def url_entry(engine: Engine, *, url: str, options_key: str) -> UrlEntry | None:
    with read_tx(engine) as conn:
        row = conn.execute(
            select(*UrlCache.__table__.columns).where(
                UrlCache.url_sha256 == url_sha256(url), UrlCache.options_key == options_key
            )
        ).first()
    if row is None:
        return None
    entry = row
    policy = CachePolicy(
        store=True,
        fresh_until=entry.fresh_until,
        etag=entry.etag,
        last_modified=entry.last_modified,
    )
    output = Output(entry.input_sha256, entry.input_bytes, entry.output_key, entry.output_bytes)
    return UrlEntry(policy, output)


def known_output(engine: Engine, *, input_sha256: str, options_key: str) -> tuple[str, int] | None:
    """The (output key, output bytes) last made from these input bytes and options."""
    with read_tx(engine) as conn:
        row = conn.execute(
            select(InputOutput.output_key, InputOutput.output_bytes).where(
                InputOutput.input_sha256 == input_sha256, InputOutput.options_key == options_key
            )
        ).first()
    return (row.output_key, row.output_bytes) if row else None


def remember(conn: Connection, records: Sequence[CacheRecord]) -> None:
    """Upsert the rows of ``records`` (the last record wins when two share a key), in key
    order, so concurrent writers on PostgreSQL always lock rows in the same order."""
    records = [record for record in records if record.policy.store]
    if not records:
        return
    now = utcnow()
    urls: dict[tuple[str, str], dict[str, Any]] = {}
    inputs: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        output = record.output
        url_hash = url_sha256(record.url)
        urls[url_hash, record.options_key] = {
            "url_sha256": url_hash,
            "options_key": record.options_key,
            "url": record.url,
            "etag": record.policy.etag,
            "last_modified": record.policy.last_modified,
            "fresh_until": record.policy.fresh_until,
            "input_sha256": output.input_sha256,
            "input_bytes": output.input_bytes,
            "output_key": output.output_key,
            "output_bytes": output.output_bytes,
            "updated_at": now,
        }
        inputs[output.input_sha256, record.options_key] = {
            "input_sha256": output.input_sha256,
            "options_key": record.options_key,
            "output_key": output.output_key,
            "output_bytes": output.output_bytes,
            "updated_at": now,
        }
    _upsert(conn, UrlCache.__table__, ("url_sha256", "options_key"), urls)  # type: ignore[arg-type]
    _upsert(conn, InputOutput.__table__, ("input_sha256", "options_key"), inputs)  # type: ignore[arg-type]


def _upsert(
    conn: Connection,
    table: Table,
    keys: tuple[str, ...],
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    values = [rows[key] for key in sorted(rows)]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(values)
    changed = {name: statement.excluded[name] for name in values[0] if name not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changed))
