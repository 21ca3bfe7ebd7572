"""Read-only queries behind the API: status bodies, product pages, output CSV rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Engine, Row, Select, func, select

from imgbatch.config import Settings
from imgbatch.db.engine import read_tx
from imgbatch.db.models import Image, ImageStatus, Product, Request, WebhookAttempt
from imgbatch.options import OutputOptions


def get_request(engine: Engine, *, request_id: str) -> Request | None:
    with read_tx(engine) as conn:
        row = conn.execute(select(Request).where(Request.id == request_id)).first()
    return _request(row._mapping) if row else None


def options_of(engine: Engine, settings: Settings, *, request_id: str) -> OutputOptions:
    """The output options the request with this id is processed with."""
    with read_tx(engine) as conn:
        stored = conn.execute(select(Request.options).where(Request.id == request_id)).scalar()
    return OutputOptions.stored(stored, settings)


def list_requests(
    engine: Engine, *, offset: int, limit: int, owner: str | None = None
) -> tuple[list[Request], int]:
    query = select(Request)
    count = select(func.count()).select_from(Request)
    if owner is not None:
        query = query.where(Request.owner == owner)
        count = count.where(Request.owner == owner)
    with read_tx(engine) as conn:
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(
            query.order_by(Request.created_at.desc(), Request.id.desc()).offset(offset).limit(limit)
        ).all()
    return [_request(row._mapping) for row in rows], total


def _request(mapping: Any) -> Request:
    # Detached, plain attribute holders: the API reads them after the connection is gone.
    return Request(**{column.key: mapping[column] for column in Request.__table__.columns})


@dataclass(frozen=True)
class ProductImages:
    """A product row and its image rows (plain rows: no ORM objects on this hot path)."""

    product: Row[Any]
    images: Sequence[Row[Any]]


def products_page(
    engine: Engine, *, request_id: str, offset: int, limit: int
) -> list[ProductImages]:
    """Products ``offset`` to ``offset + limit`` of a request with their images, in order.

    Two primary-key range scans: the page's products, then the seq range of their images.
    """
    with read_tx(engine) as conn:
        products = conn.execute(
            select(*Product.__table__.columns)
            .where(
                Product.request_id == request_id,
                Product.position >= offset,
                Product.position < offset + limit,
            )
            .order_by(Product.position)
        ).all()
        if not products:
            return []
        last = products[-1]
        images = conn.execute(
            select(*Image.__table__.columns)
            .where(
                Image.request_id == request_id,
                Image.seq >= products[0].first_seq,
                Image.seq < last.first_seq + last.image_count,
            )
            .order_by(Image.seq)
        ).all()
    page, start = [], 0
    for product in products:
        page.append(ProductImages(product, images[start : start + product.image_count]))
        start += product.image_count
    return page


def output_rows(
    engine: Engine, *, request_id: str
) -> Iterator[tuple[str, str, str, list[str | None]]]:
    """(serial, product name, URL cell, output keys) of every product, in order, with None
    where an image has no output. One ordered scan, streamed: memory stays flat."""
    query = (
        select(
            Product.position,
            Product.serial,
            Product.product_name,
            Product.urls_cell,
            Image.output_key,
        )
        .join(
            Product,
            (Product.request_id == Image.request_id) & (Product.position == Image.product_position),
        )
        .where(Image.request_id == request_id)
        .order_by(Image.seq)
    )
    for product in _by_product(engine, query):
        first = product[0]
        yield first.serial, first.product_name, first.urls_cell, [r.output_key for r in product]


def error_rows(
    engine: Engine, *, request_id: str
) -> Iterator[tuple[str, str, list[tuple[str, str, str]]]]:
    """(serial, product name, failures) of every product with a failed image, in order;
    a failure is (URL, error code, message), in URL order. One ordered scan, streamed."""
    query = (
        select(
            Product.position,
            Product.serial,
            Product.product_name,
            Image.url,
            Image.error_code,
            Image.error,
        )
        .join(
            Product,
            (Product.request_id == Image.request_id) & (Product.position == Image.product_position),
        )
        .where(Image.request_id == request_id, Image.status == ImageStatus.FAILED)
        .order_by(Image.seq)
    )
    for product in _by_product(engine, query):
        first = product[0]
        yield (
            first.serial,
            first.product_name,
            [(r.url, r.error_code or "", r.error or "") for r in product],
        )


def webhook_attempts(engine: Engine, *, request_id: str, limit: int = 50) -> list[WebhookAttempt]:
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(*WebhookAttempt.__table__.columns)
            .where(WebhookAttempt.request_id == request_id)
            .order_by(WebhookAttempt.id)
            .limit(limit)
        ).all()
    return [WebhookAttempt(**dict(row._mapping)) for row in rows]


def failed_images(
    engine: Engine, *, request_id: str, limit: int
) -> list[tuple[int, str, str | None, str | None]]:
    """(CSV line, URL, error_code, error) of the first failed images of a request."""
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(Product.line, Image.url, Image.error_code, Image.error)
            .join(
                Product,
                (Product.request_id == Image.request_id)
                & (Product.position == Image.product_position),
            )
            .where(Image.request_id == request_id, Image.status == ImageStatus.FAILED)
            .order_by(Image.seq)
            .limit(limit)
        ).all()
    return [(line, url, code, error) for line, url, code, error in rows]


def _by_product(engine: Engine, query: Select[Any]) -> Iterator[list[Row[Any]]]:
    """The rows of a query whose first column is the product position, streamed in one
    read transaction and grouped into one list per product."""
    with read_tx(engine) as conn:
        rows = conn.execution_options(yield_per=5000).execute(query)
        for _, group in groupby(rows, key=itemgetter(0)):
            yield list(group)
