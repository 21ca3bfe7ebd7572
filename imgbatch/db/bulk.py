"""Bulk inserts of plain tuples: COPY on PostgreSQL, executemany on SQLite.

An upload of 100,000 rows writes 400,000 rows; through SQLAlchemy's per-row parameter
handling that alone takes seconds, so ingest writes tuples straight to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the open transaction."""
    if not rows:
        return
    names = ", ".join(columns)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif dialect == "sqlite":
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", list(rows))
    else:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
