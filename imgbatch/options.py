"""The output options of a request (SPEC §10): quality, format and size cap.

One frozen value, stored with the request and handed to every step that depends on it:
the encoder, the output key and extension, and the re-run cache (outputs are reused
only under the same options).
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from imgbatch.config import Settings

OutputFormat = Literal["jpeg", "webp", "avif"]
FORMATS: tuple[OutputFormat, ...] = ("jpeg", "webp", "avif")

EXTENSIONS: dict[OutputFormat, str] = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
# By file extension: what /files/ and S3 serve each output as.
CONTENT_TYPES = {"jpg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}

# A default quality given on JPEG's scale (IMGBATCH_QUALITY), mapped to each format's own
# scale so that outputs look alike: the quality at which the format's mean SSIM on the
# photo corpus matches JPEG's at that quality (`python -m bench formats --calibrate`).
# Between the measured points the mapping is linear.
EQUIVALENT_QUALITY: dict[OutputFormat, dict[int, int]] = {
    "jpeg": {1: 1, 95: 95},
    "webp": {1: 1, 30: 42, 50: 76, 70: 85, 85: 90, 95: 95},
    "avif": {1: 1, 30: 44, 50: 55, 70: 71, 85: 90, 95: 95},
}


class OutputOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    quality: int = Field(default=50, ge=1, le=95)
    format: OutputFormat = "jpeg"
    max_size: int | None = Field(default=None, ge=16, le=16384)

    @classmethod
    def defaults(cls, settings: Settings) -> OutputOptions:
        """The options of a request that sets none: the service's configured defaults."""
        return cls.chosen(settings)

    @classmethod
    def stored(cls, value: dict[str, Any] | None, settings: Settings) -> OutputOptions:
        """The options stored with a request; None, on requests stored before options
        existed, means what those were processed with: JPEG at IMGBATCH_QUALITY."""
        return cls(quality=settings.quality) if value is None else cls.model_validate(value)

    @classmethod
    def chosen(
        cls,
        settings: Settings,
        *,
        quality: int | str | None = None,
        format: str | None = None,
        max_size: int | str | None = None,
    ) -> OutputOptions:
        """The options a caller asked for, each unset one (None or blank) taking the
        configured default; a default quality maps to the chosen format's scale.

        Raises ``OptionsInvalid`` naming the first field that is wrong.
        """
        fields: dict[str, object] = {
            name: value.strip() if isinstance(value, str) else value
            for name, value in (("quality", quality), ("format", format), ("max_size", max_size))
        }
        given = {name: value for name, value in fields.items() if value not in (None, "")}
        try:
            chosen_format = cls.model_validate({"format": given.get("format", settings.format)})
            if "quality" not in given:
                given["quality"] = equivalent_quality(settings.quality, chosen_format.format)
            given.setdefault("format", settings.format)
            given.setdefault("max_size", settings.max_size)
            return cls.model_validate(given)
        except ValidationError as error:
            raise OptionsInvalid.of(error) from None

    @property
    def key(self) -> str:
        """A short stable name for these options, e.g. ``jpeg-q50`` or ``webp-q55-max2048``:
        part of output keys and of the re-run cache's lookups."""
        name = f"{self.format}-q{self.quality}"
        return name if self.max_size is None else f"{name}-max{self.max_size}"

    @property
    def extension(self) -> str:
        """The output file's extension, without the dot: ``jpg``, ``webp`` or ``avif``."""
        return EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.extension]


def equivalent_quality(jpeg_quality: int, output_format: OutputFormat) -> int:
    """The quality on ``output_format``'s scale that looks like JPEG at ``jpeg_quality``."""
    points = sorted(EQUIVALENT_QUALITY[output_format].items())
    for (low, low_value), (high, high_value) in pairwise(points):
        if low <= jpeg_quality <= high:
            share = (jpeg_quality - low) / (high - low)
            return round(low_value + share * (high_value - low_value))
    return jpeg_quality  # outside 1..95: left for validation to refuse


class OptionsInvalid(ValueError):
    """An output option out of range or unknown; ``field`` names it (``quality``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    @classmethod
    def of(cls, error: ValidationError) -> OptionsInvalid:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "options"
        return cls(field, _MESSAGES.get(field, first["msg"]))


_MESSAGES = {
    "quality": "must be a whole number from 1 to 95",
    "format": "must be one of jpeg, webp, avif",
    "max_size": "must be a whole number of pixels from 16 to 16384 (the longest side)",
}
