"""Response bodies of the API (SPEC §3), one class per shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Row

from imgbatch.config import Settings
from imgbatch.db.models import TERMINAL_STATUSES, Request
from imgbatch.storage import Storage

T = TypeVar("T")


class StatusBody(BaseModel):
    request_id: str
    status: str
    total_products: int
    total_images: int
    processed_images: int = Field(description="images finished successfully")
    failed_images: int = Field(description="images finished with an error")
    reused_images: int = Field(
        description="succeeded images whose output came from an earlier identical input"
    )
    progress: float = Field(description="(processed + failed) / total, 0..1")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    output_csv_url: str | None
    webhook_url: str | None
    webhook_status: str | None
    # Beyond the SPEC: bytes downloaded and written for succeeded images, for the savings.
    input_bytes: int
    output_bytes: int

    @classmethod
    def of(cls, request: Request, settings: Settings) -> StatusBody:
        done = request.processed_images + request.failed_images
        terminal = request.status in TERMINAL_STATUSES
        return cls(
            request_id=request.id,
            status=request.status,
            total_products=request.total_products,
            total_images=request.total_images,
            processed_images=request.processed_images,
            failed_images=request.failed_images,
            reused_images=request.reused_images,
            progress=round(done / request.total_images, 4) if request.total_images else 0.0,
            created_at=request.created_at,
            updated_at=request.updated_at,
            finished_at=request.finished_at,
            output_csv_url=(
                f"{settings.public_url}/api/v1/requests/{request.id}/output.csv"
                if terminal
                else None
            ),
            webhook_url=request.webhook_url,
            webhook_status=request.webhook_status,
            input_bytes=request.input_bytes,
            output_bytes=request.output_bytes,
        )


class ImageItem(BaseModel):
    position: int
    input_url: str
    output_url: str | None
    status: str
    error_code: str | None
    error: str | None
    input_bytes: int | None
    output_bytes: int | None
    reused: bool = Field(description="the output came from an earlier identical input")

    @classmethod
    def of(cls, image: Row[Any], storage: Storage) -> ImageItem:
        return cls(
            position=image.position,
            input_url=image.url,
            output_url=storage.url_for(image.output_key) if image.output_key else None,
            status=image.status,
            error_code=image.error_code,
            error=image.error,
            input_bytes=image.input_bytes,
            output_bytes=image.output_bytes,
            reused=image.reused,
        )


class ProductItem(BaseModel):
    serial: str
    product_name: str
    images: list[ImageItem]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class CsvErrorItem(BaseModel):
    line: int
    column: str | None
    message: str
