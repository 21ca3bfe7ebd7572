"""Errors of imgbatch, and the machine-readable codes of failed images.

    ImgbatchError
     ├── CsvError                 the uploaded CSV is rejected whole
     │    ├── CsvTooLarge         413: over IMGBATCH_MAX_UPLOAD_BYTES
     │    ├── CsvUnreadable       400: empty, binary, not UTF-8
     │    └── CsvInvalid          422: readable, but wrong headers or rows (lists every error)
     └── ImageError               one image failed; carries an ErrorCode and a human message
                                  (never fails its siblings; recorded on the image row)

Third-party errors (httpx, Pillow, boto) are mapped to ImageError in one place each:
``fetch/failures.py``, ``imaging.py`` and ``storage/base.py`` (with each backend's
``failures``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_URL = "invalid_url"
    BLOCKED_ADDRESS = "blocked_address"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_ERROR = "http_error"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT_IMAGE = "corrupt_image"
    STORAGE_ERROR = "storage_error"
    INTERNAL_ERROR = "internal_error"


class ImgbatchError(Exception):
    """Base of every error imgbatch raises on purpose."""


@dataclass(frozen=True)
class CsvProblem:
    """One problem found in an uploaded CSV; ``line`` counts physical lines, header is 1."""

    line: int
    column: str | None
    message: str


class CsvError(ImgbatchError):
    status_code = 400


class CsvTooLarge(CsvError):
    status_code = 413


class CsvUnreadable(CsvError):
    status_code = 400


class CsvInvalid(CsvError):
    status_code = 422

    def __init__(self, problems: list[CsvProblem], truncated: bool = False) -> None:
        self.problems = problems
        self.truncated = truncated
        super().__init__(f"{len(problems)} problem(s) in the CSV")


class ImageError(ImgbatchError):
    """A single image could not be produced. ``retryable`` marks a download failure the
    fetcher tries again (``fetch/fetcher.py`` reads it)."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
