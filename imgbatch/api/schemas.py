"""Response bodies of the API (SPEC §3), one class per shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import Row

from imgbatch.config import Settings
from imgbatch.db.models import TERMINAL_STATUSES, Request
from imgbatch.options import OutputOptions
from imgbatch.storage import Storage

T = TypeVar("T")


# Read from a ``Request`` row by ``StatusBody.of(request, settings)``; ``progress`` and
# ``output_csv_url`` are derived from the row's other columns (the settings as context).
class StatusBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    request_id: str = Field(validation_alias=AliasChoices("request_id", "id"))
    status: str
    total_products: int
    total_images: int
    processed_images: int = Field(description="images finished successfully")
    failed_images: int = Field(description="images finished with an error")
    reused_images: int = Field(
        description="succeeded images whose output came from an earlier identical input"
    )
    cancelled_images: int = Field(description="images cancelled before they finished")
    progress: float = Field(
        validation_alias=AliasChoices("progress", "total_images"),
        description="(processed + failed) / total, 0..1",
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    output_csv_url: str | None = Field(validation_alias=AliasChoices("output_csv_url", "id"))
    errors_csv_url: str | None = Field(
        validation_alias=AliasChoices("errors_csv_url", "id"),
        description="the errors file (rows with a failed image) once finished; null when "
        "no image failed",
    )
    webhook_url: str | None
    webhook_status: str | None
    # Beyond the SPEC: bytes downloaded and written for succeeded images, for the savings.
    input_bytes: int
    output_bytes: int
    options: OutputOptions = Field(description="the output options in force (SPEC §10)")

    @classmethod
    def of(cls, request: Request, settings: Settings) -> StatusBody:
        return cls.model_validate(request, context={"settings": settings})

    @field_validator("options", mode="before")
    @classmethod
    def _stored_options(cls, value: Any, info: ValidationInfo) -> Any:
        settings = (info.context or {}).get("settings")
        if value is None and settings is not None:  # a request from before options existed
            return OutputOptions.stored(None, settings)
        return value

    @model_validator(mode="after")
    def _derive(self, info: ValidationInfo) -> StatusBody:
        done = self.processed_images + self.failed_images
        self.progress = round(done / self.total_images, 4) if self.total_images else 0.0
        settings = (info.context or {}).get("settings")
        if settings is not None:  # read from a row, not re-read from a body
            terminal = self.status in TERMINAL_STATUSES
            self.output_csv_url = settings.output_csv_url(self.request_id) if terminal else None
            failures = terminal and self.failed_images > 0
            self.errors_csv_url = settings.errors_csv_url(self.request_id) if failures else None
        return self


# Read from an image row by ``ImageItem.of(row, storage)``.
class ImageItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    input_url: str = Field(validation_alias=AliasChoices("input_url", "url"))
    # From the row's output key, made a URL by the storage given as context.
    output_url: str | None = Field(validation_alias=AliasChoices("output_url", "output_key"))
    status: str
    error_code: str | None
    error: str | None
    input_bytes: int | None
    output_bytes: int | None
    reused: bool = Field(description="the output came from an earlier identical input")

    @classmethod
    def of(cls, image: Row[Any], storage: Storage) -> ImageItem:
        return cls.model_validate(image, context={"storage": storage})

    @field_validator("output_url")
    @classmethod
    def _url_of_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        storage = (info.context or {}).get("storage")
        return storage.url_for(value) if storage is not None and value else value


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
