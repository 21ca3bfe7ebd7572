"""Read-only queries behind the API: status bodies, product pages, output CSV rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from imgbatch.db.engine import read_tx
from imgbatch.db.models import Image, ImageStatus, Product, Request, WebhookAttempt


def get_request(engine: Engine, *, request_id: str) -> Request | None:
    with read_tx(engine) as conn:
        row = conn.execute(select(Request).where(Request.id == request_id)).first()
    return _request(row._mapping) if row else None


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
    product: Product
    images: list[Image]


def products_page(
    engine: Engine, *, request_id: str, offset: int, limit: int
) -> list[ProductImages]:
    """Products ``offset`` to ``offset + limit`` of a request with their images, in order."""
    with read_tx(engine) as conn:
        products = [
            Product(**dict(row._mapping))
            for row in conn.execute(
                select(*Product.__table__.columns)
                .where(
                    Product.request_id == request_id,
                    Product.position >= offset,
                    Product.position < offset + limit,
                )
                .order_by(Product.position)
            )
        ]
        if not products:
            return []
        images = [
            Image(**dict(row._mapping))
            for row in conn.execute(
                select(*Image.__table__.columns)
                .where(
                    Image.request_id == request_id,
                    Image.product_position >= products[0].position,
                    Image.product_position <= products[-1].position,
                )
                .order_by(Image.seq)
            )
        ]
    by_product: dict[int, list[Image]] = {p.position: [] for p in products}
    for image in images:
        by_product[image.product_position].append(image)
    return [ProductImages(p, by_product[p.position]) for p in products]


def output_rows(
    engine: Engine, *, request_id: str, batch: int = 5000
) -> Iterator[tuple[Product, list[str | None]]]:
    """Every product with the output keys of its images (None where an image failed).

    Streams in batches of products so memory stays flat for any request size.
    """
    start = 0
    while page := products_page(engine, request_id=request_id, offset=start, limit=batch):
        for item in page:
            yield item.product, [image.output_key for image in item.images]
        start += batch


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
