"""The floors an upload is measured against: the same rows parsed with the ``csv`` module
and written with nothing between them and the driver.

- SQLite: ``sqlite3`` executemany of the products and images into a fresh WAL file that has
  the service's schema (migrated as ``serve`` does), one transaction.
- PostgreSQL: ``COPY`` of the same rows into a fresh database with the same schema.

Only the parse and the writes are timed (wall and this process's CPU); the schema and the
request row are made first.
"""

from __future__ import annotations

import csv
import io
import resource
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from imgbatch.db.ingest import IMAGE_COLUMNS, PRODUCT_COLUMNS
from imgbatch.db.migrate import upgrade

REQUEST_ID = "00000000-0000-0000-0000-000000000001"


def _rows(body: bytes) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(products, images) per 5,000 rows, as plain tuples in the service's column order."""
    reader = csv.reader(io.StringIO(body.decode("utf-8")))
    next(reader)
    products: list[tuple[Any, ...]] = []
    images: list[tuple[Any, ...]] = []
    seq = 0
    for position, (serial, name, cell) in enumerate(reader):
        urls = [url.strip() for url in cell.split(",")]
        products.append((REQUEST_ID, position, position + 2, serial, name, cell, seq, len(urls)))
        for index, url in enumerate(urls):
            images.append((REQUEST_ID, seq, position, index, url, None, 0, "pending", 0))
            seq += 1
        if len(products) == 5000:
            yield products, images
            products, images = [], []
    if products:
        yield products, images


def _request_row(now: str) -> tuple[Any, ...]:
    return (REQUEST_ID, "pending", now, now, "{}")


_REQUEST_SQL = (
    "INSERT INTO requests (id, status, created_at, updated_at, csv_header, total_products, "
    "total_images, processed_images, failed_images, input_bytes, output_bytes, webhook_attempts) "
    "VALUES ({0}, {0}, {0}, {0}, {0}, 0, 0, 0, 0, 0, 0, 0)"
)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sqlite_floor(body: bytes, directory: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) of csv + sqlite3 executemany into a fresh migrated WAL file."""
    path = directory / "floor.sqlite3"
    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_REQUEST_SQL.format("?"), _request_row(datetime.now(UTC).isoformat()))
    products_sql = _insert("products", PRODUCT_COLUMNS, "?")
    images_sql = _insert("images", IMAGE_COLUMNS, "?")
    started, cpu = time.perf_counter(), cpu_seconds()
    conn.execute("BEGIN IMMEDIATE")
    for products, images in _rows(body):
        conn.executemany(products_sql, products)
        conn.executemany(images_sql, images)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started, cpu_seconds() - cpu
    conn.close()
    return elapsed


def postgres_floor(body: bytes, url: str) -> tuple[float, float]:
    """Seconds (wall, CPU of this process) of csv + COPY into a fresh migrated database."""
    upgrade(url)
    with psycopg.connect(url) as conn:
        conn.execute(_REQUEST_SQL.format("%s"), _request_row(datetime.now(UTC).isoformat()))
        conn.commit()
        started, cpu = time.perf_counter(), cpu_seconds()
        with conn.cursor() as cursor:
            for products, images in _rows(body):
                for table, columns, rows in (
                    ("products", PRODUCT_COLUMNS, products),
                    ("images", IMAGE_COLUMNS, images),
                ):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started, cpu_seconds() - cpu


def _insert(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
