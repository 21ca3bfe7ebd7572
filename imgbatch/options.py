"""The output options of a request (SPEC §10): quality, format and size cap.

One frozen value, stored with the request and handed to every step that depends on it:
the encoder, the output key and extension, and the re-run cache (outputs are reused
only under the same options).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imgbatch.config import Settings

OutputFormat = Literal["jpeg", "webp", "avif"]


class OutputOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    quality: int = Field(default=50, ge=1, le=95)
    format: OutputFormat = "jpeg"
    max_size: int | None = Field(default=None, ge=16, le=16384)

    @classmethod
    def defaults(cls, settings: Settings) -> OutputOptions:
        """The options of a request that sets none: the service's configured defaults."""
        return cls(quality=settings.quality)

    @property
    def key(self) -> str:
        """A short stable name for these options, e.g. ``jpeg-q50`` or ``webp-q55-max2048``:
        part of output keys and of the re-run cache's lookups."""
        name = f"{self.format}-q{self.quality}"
        return name if self.max_size is None else f"{name}-max{self.max_size}"
