"""Store an uploaded CSV as a request: streamed, batched, all-or-nothing.

Rows are inserted in batches inside one transaction while the CSV is still being read;
if the reader finds any problem, the transaction rolls back and nothing is stored.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, bindparam, insert, update

from imgbatch.csvfile import CsvReader
from imgbatch.db.bulk import insert_rows
from imgbatch.db.engine import utcnow, write_tx
from imgbatch.db.models import Base, Image, ImageStatus, Request, RequestStatus
from imgbatch.options import OutputOptions

BATCH_ROWS = 5000
PENDING = ImageStatus.PENDING.value
_DEFAULT_PORTS = {"http": 80, "https": 443}


# scheme://host[:port] then the rest, when the host part has no user info or IPv6 literal.
_SIMPLE_URL = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@\[\]:]+)(?::(\d+))?([/?][^#]*)?(?:#.*)?", re.DOTALL
)


def canonical_url(url: str) -> str:
    """The form under which two spellings of one URL count as the same image.

    Scheme and host are case-insensitive, a default port is the same as none, and the
    fragment never reaches the server. (A regular expression handles the common shape:
    ``urlsplit`` on 300,000 URLs would cost seconds of an upload.)
    """
    url = url.strip()
    match = _SIMPLE_URL.fullmatch(url)
    if match is None:
        return _canonical_url_slow(url)
    scheme, host, port, rest = match.groups()
    scheme = scheme.lower()
    netloc = host.lower()
    if port is not None and int(port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{int(port)}"
    rest = rest or "/"
    return f"{scheme}://{netloc}{rest if rest.startswith('/') else '/' + rest}"


def _canonical_url_slow(url: str) -> str:
    parts = urlsplit(url)
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
    options: OutputOptions | None = None,
    runner_id: str | None = None,
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
                options=options.model_dump() if options else None,
                runner_id=runner_id,
            )
        )
        totals = _insert_rows(conn, request_id, reader)
        reader.raise_if_invalid()  # rolls the transaction back
        conn.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(total_products=totals[0], total_images=totals[1])
        )


PRODUCTS = Base.metadata.tables["products"]
IMAGES = Base.metadata.tables["images"]
PRODUCT_COLUMNS = (
    "request_id",
    "position",
    "line",
    "serial",
    "product_name",
    "urls_cell",
    "first_seq",
    "image_count",
)
IMAGE_COLUMNS = (
    "request_id",
    "seq",
    "product_position",
    "position",
    "url",
    "source_seq",
    "copies",
    "status",
    "attempts",
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
        product_rows: list[tuple[Any, ...]] = []
        image_rows: list[tuple[Any, ...]] = []
        for row in batch:
            product_rows.append(
                (
                    request_id,
                    products,
                    row.line,
                    row.serial,
                    row.product_name,
                    row.urls_cell,
                    images,
                    len(row.urls),
                )
            )
            for position, url in enumerate(row.urls):
                source = sources.setdefault(canonical_url(url), images)
                if source != images:
                    copies[source] = copies.get(source, 0) + 1
                duplicate_of = None if source == images else source
                image_rows.append(
                    (request_id, images, products, position, url, duplicate_of, 0, PENDING, 0)
                )
                images += 1
            products += 1
        insert_rows(conn, PRODUCTS, PRODUCT_COLUMNS, product_rows)
        insert_rows(conn, IMAGES, IMAGE_COLUMNS, image_rows)
    if copies and not reader.problems:
        conn.execute(
            update(Image)
            .where(Image.request_id == request_id)
            .where(Image.seq == bindparam("b_seq"))
            .values(copies=bindparam("b_copies")),
            [{"b_seq": seq, "b_copies": n} for seq, n in copies.items()],
        )
    return products, images
