"""Bulk inserts of plain tuples: COPY on PostgreSQL, multi-row INSERTs on SQLite.

An upload of 100,000 rows writes 400,000 rows; through SQLAlchemy's per-row parameter
handling that alone takes seconds, so ingest writes tuples straight to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError

# The most parameters one SQLite statement may hold in any build we may meet
# (SQLITE_MAX_VARIABLE_NUMBER, 999 before SQLite 3.32).
SQLITE_PARAMETERS = 999


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the open transaction."""
    if not rows:
        return
    names = ", ".join(columns)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        _copy(conn, f"COPY {table.name} ({names}) FROM STDIN", rows)
    elif dialect == "sqlite":
        _insert_sqlite(conn, f"INSERT INTO {table.name} ({names}) VALUES ", len(columns), rows)
    else:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _copy(conn: Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as error:
        # Raised as SQLAlchemy raises what its own statements meet (IntegrityError,
        # OperationalError…): the driver's cursor is used here for COPY alone.
        raise DBAPIError.instance(
            statement, None, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from error


def _insert_sqlite(conn: Connection, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """As many rows per statement as its parameters allow. executemany steps and resets the
    statement once per row, and binds each row through Python: 1.03 s of CPU for 300,000
    image rows, against 0.58 s in statements of 111 rows (``bench/README.md``)."""
    per_statement = SQLITE_PARAMETERS // width
    one = "(" + ", ".join("?" * width) + ")"
    full = head + ", ".join([one] * per_statement)  # the driver caches it once prepared
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        sql = full if len(part) == per_statement else head + ", ".join([one] * len(part))
        conn.exec_driver_sql(sql, tuple(chain.from_iterable(part)))


# One batch's inserts: (table, columns, rows) for each table, in order.
Batch = Sequence[tuple[Table, Sequence[str], Sequence[Sequence[Any]]]]


class BatchWriter:
    """Writes an upload's batches in order, in the open transaction of ``conn``.

    On PostgreSQL a batch's ``COPY`` runs in a thread of its own while the caller reads
    the next batch: the database writes one batch's rows while this process parses the
    next, instead of each waiting for the other (a 100,000-row upload reached its 202 in
    3.2 s, not 3.4-3.5 s: ``bench/README.md``). At most one batch is in flight, so memory
    holds two.
    On SQLite the writes are this process's own work under the GIL: they run in place.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="imgbatch-ingest")
            if conn.dialect.name == "postgresql"
            else None
        )
        self._in_flight: Future[None] | None = None

    def write(self, batch: Batch) -> None:
        if self._thread is None:
            self._write(batch)
            return
        self.wait()  # the connection is the writer's until its batch is done
        self._in_flight = self._thread.submit(self._write, batch)

    def wait(self) -> None:
        """Until every batch is written; raises what a write raised."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _write(self, batch: Batch) -> None:
        for table, columns, rows in batch:
            insert_rows(self._conn, table, columns, rows)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is None:
                self.wait()
            elif self._in_flight is not None:
                # Already failing: the transaction rolls back once the writer is off the
                # connection; what the write raised matters less than what we raise.
                self._in_flight.exception()
        finally:
            if self._thread is not None:
                self._thread.shutdown()
