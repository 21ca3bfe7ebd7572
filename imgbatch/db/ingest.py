"""Store an uploaded CSV as a request: streamed, batched, all-or-nothing.

Rows are inserted in batches inside one transaction while the CSV is still being read;
if the reader finds any problem, the transaction rolls back and nothing is stored.
"""

from __future__ import annotations

from itertools import islice
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, bindparam, insert, update

from imgbatch.csvfile import CsvReader, CsvRow
from imgbatch.db.engine import utcnow, write_tx
from imgbatch.db.models import Image, Product, Request, RequestStatus

BATCH_ROWS = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """The form under which two spellings of one URL count as the same image.

    Scheme and host are case-insensitive, a default port is the same as none, and the
    fragment never reaches the server.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def create_request(
    engine: Engine,
    *,
    request_id: str,
    reader: CsvReader,
    webhook_url: str | None = None,
    owner: str | None = None,
) -> None:
    """Insert the request, its products and images; raise CsvInvalid (storing nothing)."""
    now = utcnow()
    with write_tx(engine) as conn:
        conn.execute(
            insert(Request).values(
                id=request_id,
                status=RequestStatus.PENDING,
                created_at=now,
                updated_at=now,
                csv_header=reader.header.to_json(),
                webhook_url=webhook_url,
                owner=owner,
            )
        )
        totals = _insert_rows(conn, request_id, reader)
        reader.raise_if_invalid()  # rolls the transaction back
        conn.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(total_products=totals[0], total_images=totals[1])
        )


def _insert_rows(conn: Connection, request_id: str, reader: CsvReader) -> tuple[int, int]:
    sources: dict[str, int] = {}  # canonical URL -> seq of its first occurrence
    copies: dict[int, int] = {}  # source seq -> number of later duplicates
    products = images = 0
    rows = reader.rows()
    while batch := list(islice(rows, BATCH_ROWS)):
        if reader.problems:
            # Keep reading to report every error, but stop storing: it all rolls back.
            for _ in rows:
                pass
            break
        product_rows: list[dict[str, Any]] = []
        image_rows: list[dict[str, Any]] = []
        for row in batch:
            product_rows.append(_product_row(request_id, products, row))
            for position, url in enumerate(row.urls):
                key = canonical_url(url)
                source = sources.setdefault(key, images)
                if source != images:
                    copies[source] = copies.get(source, 0) + 1
                image_rows.append(
                    {
                        "request_id": request_id,
                        "seq": images,
                        "product_position": products,
                        "position": position,
                        "url": url,
                        "source_seq": None if source == images else source,
                    }
                )
                images += 1
            products += 1
        conn.execute(insert(Product), product_rows)
        conn.execute(insert(Image), image_rows)
    if copies and not reader.problems:
        conn.execute(
            update(Image)
            .where(Image.request_id == request_id)
            .where(Image.seq == bindparam("b_seq"))
            .values(copies=bindparam("b_copies")),
            [{"b_seq": seq, "b_copies": n} for seq, n in copies.items()],
        )
    return products, images


def _product_row(request_id: str, position: int, row: CsvRow) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "position": position,
        "line": row.line,
        "serial": row.serial,
        "product_name": row.product_name,
        "urls_cell": row.urls_cell,
    }
