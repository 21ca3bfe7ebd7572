"""Monotonic counters in the database (``metric_counters``), summed across every process.

Worker processes add to them once per chunk (one small transaction); ``/metrics`` reads
the whole table, which holds a few dozen rows whatever the volume of work.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from imgbatch.db.engine import read_tx, write_tx
from imgbatch.db.models import MetricCounter

WEBHOOK_ATTEMPTS = "imgbatch_webhook_attempts"

Key = tuple[str, str]  # (metric name, its labels as "a=x,b=y")


def add_counts(engine: Engine, increments: Mapping[Key, float]) -> None:
    """Add each increment to its counter, creating it at zero first; sorted, so two
    writers lock the rows in the same order."""
    if not increments:
        return
    rows = [
        {"name": name, "labels": labels, "value": amount}
        for (name, labels), amount in sorted(increments.items())
    ]
    with write_tx(engine) as conn:
        conn.execute(_add_statement(conn.dialect.name), rows)


@functools.cache
def _add_statement(dialect: str) -> Any:
    """The upsert of one counter, built once and run as an executemany."""
    insert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(MetricCounter)
    return insert.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={"value": MetricCounter.value + insert.excluded.value},
    )


def read_counts(engine: Engine) -> dict[Key, float]:
    with read_tx(engine) as conn:
        rows = conn.execute(select(MetricCounter.name, MetricCounter.labels, MetricCounter.value))
        return {(name, labels): float(value) for name, labels, value in rows}


def labels_of(text: str) -> dict[str, str]:
    """``"a=x,b=y"`` back to ``{"a": "x", "b": "y"}``."""
    pairs = (part.partition("=") for part in text.split(",") if part)
    return {name: value for name, _, value in pairs}


def labels_text(**labels: str) -> str:
    return ",".join(f"{name}={value}" for name, value in labels.items())
