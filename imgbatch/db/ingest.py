"""Store an uploaded CSV as a request: streamed, batched, all-or-nothing.

Rows are inserted in batches inside one transaction while the CSV is still being read;
if the reader finds any problem, the transaction rolls back and nothing is stored.
"""

from __future__ import annotations

import re
from itertools import accumulate, islice, repeat
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, bindparam, insert, update

from imgbatch.csvfile import CsvReader, CsvRow
from imgbatch.db.bulk import BatchWriter
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


# Already in canonical form (most URLs): lower-case http(s) scheme and host, no port or one
# that is not a default (80 and 443 go the long way) and has no leading zero, a path, no
# fragment, nothing to strip. Returned as they are, without building a new string.
_CANONICAL = re.compile(r"https?://[a-z0-9.-]+(?::(?!80/|443/)[1-9][0-9]{0,4})?/[^#\s]*")


def canonical_url(url: str) -> str:
    """The form under which two spellings of one URL count as the same image.

    Scheme and host are case-insensitive, a default port is the same as none, and the
    fragment never reaches the server. (A regular expression handles the common shape:
    ``urlsplit`` on 300,000 URLs would cost seconds of an upload.)
    """
    if _CANONICAL.fullmatch(url):
        return url
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
    resume_key: str | None = None,
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
                resume_key=resume_key,
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
    with BatchWriter(conn) as writer:
        while batch := list(islice(rows, BATCH_ROWS)):
            if reader.problems:
                # Keep reading to report every error, but stop storing: it all rolls back.
                for _ in rows:
                    pass
                break
            product_rows, image_rows = _rows_of(
                batch, request_id, products, images, sources, copies
            )
            products += len(product_rows)
            images += len(image_rows)
            writer.write(
                [(PRODUCTS, PRODUCT_COLUMNS, product_rows), (IMAGES, IMAGE_COLUMNS, image_rows)]
            )
    if copies and not reader.problems:
        conn.execute(
            update(Image)
            .where(Image.request_id == request_id)
            .where(Image.seq == bindparam("b_seq"))
            .values(copies=bindparam("b_copies")),
            [{"b_seq": seq, "b_copies": n} for seq, n in copies.items()],
        )
    return products, images


def _rows_of(
    batch: list[CsvRow],
    request_id: str,
    products: int,
    images: int,
    sources: dict[str, int],
    copies: dict[int, int],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The product and image rows of ``batch``, after ``products`` and ``images`` stored.

    Column by column in comprehensions, then zipped into tuples: a third of the CPU of
    building each tuple in a loop of appends."""
    counts = [len(row.urls) for row in batch]
    firsts = list(accumulate(counts, initial=images))
    positions = range(products, products + len(batch))
    product_rows = list(
        zip(
            repeat(request_id),
            positions,
            [row.line for row in batch],
            [row.serial for row in batch],
            [row.product_name for row in batch],
            [row.urls_cell for row in batch],
            firsts,
            counts,
            strict=False,  # firsts has one more
        )
    )
    urls = [url for row in batch for url in row.urls]
    seqs = range(images, images + len(urls))
    image_rows = list(
        zip(
            repeat(request_id),
            seqs,
            [
                position
                for position, count in zip(positions, counts, strict=True)
                for _ in range(count)
            ],
            [place for count in counts for place in range(count)],
            urls,
            _sources_of(urls, seqs, sources, copies),
            repeat(0),
            repeat(PENDING),
            repeat(0),
        )
    )
    return product_rows, image_rows


def _sources_of(
    urls: list[str], seqs: range, sources: dict[str, int], copies: dict[int, int]
) -> list[int | None]:
    """For each URL, the seq of an earlier image with the same canonical URL, else None."""
    found: list[int | None] = []
    for seq, url in zip(seqs, urls, strict=True):
        source = sources.setdefault(canonical_url(url), seq)
        if source == seq:
            found.append(None)
        else:
            found.append(source)
            copies[source] = copies.get(source, 0) + 1
    return found
