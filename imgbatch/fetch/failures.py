"""Every way a download fails, mapped to an ImageError in one place.

The fetcher raises the small exceptions below for what it decides itself (a bad status,
too many redirects, too large, out of time); the connection checks raise AddressBlocked
and NameNotResolved; aiohttp (downloads) and httpx (webhooks) raise the rest.
``as_image_error`` turns any of them into the ImageError recorded on the image, and its
``retryable`` flag is what the retry loop obeys.
"""

from __future__ import annotations

import email.utils
import time
from http import HTTPStatus

import aiohttp
import httpx

from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch.addresses import blocked_address
from imgbatch.fetch.transport import AddressBlocked, NameNotResolved


class BadStatus(Exception):
    """The final answer was not 2xx. ``retry_after`` is the server's wish, in seconds."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class TooManyRedirects(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} redirects")
        self.limit = limit


class TooLarge(Exception):
    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit
        self.declared = declared


class BadEncoding(Exception):
    """The body's Content-Encoding is one we cannot decode within the limit, or damaged."""


class OutOfTime(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds


def is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def reason_phrase(status: int, reason: str) -> str:
    if reason:
        return reason
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _size(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


def as_image_error(exc: BaseException) -> ImageError | None:
    """The ImageError for a download failure, or None for an exception that is a bug."""
    match exc:
        case ImageError():
            return exc
        case AddressBlocked():
            return blocked_address(exc.host, exc.address)
        case NameNotResolved():
            return ImageError(
                ErrorCode.DNS_ERROR,
                f"the host name {exc.host} could not be resolved",
                retryable=exc.temporary,
            )
        case BadStatus():
            answer = f"{exc.status} {reason_phrase(exc.status, exc.reason)}".strip()
            return ImageError(
                ErrorCode.HTTP_ERROR,
                f"the server answered {answer}",
                retryable=is_transient(exc.status),
            )
        case TooManyRedirects():
            return ImageError(
                ErrorCode.TOO_MANY_REDIRECTS, f"the server redirected more than {exc.limit} times"
            )
        case TooLarge():
            said = f" (it announced {exc.declared} bytes)" if exc.declared is not None else ""
            return ImageError(
                ErrorCode.TOO_LARGE, f"the image is larger than the {_size(exc.limit)} limit{said}"
            )
        case OutOfTime():
            return ImageError(
                ErrorCode.TIMEOUT,
                f"the download did not finish within {exc.seconds:g} s",
                retryable=True,
            )
        case aiohttp.ServerTimeoutError() | httpx.TimeoutException():
            return ImageError(
                ErrorCode.TIMEOUT, "the server did not answer in time", retryable=True
            )
        case (
            aiohttp.InvalidURL()
            | aiohttp.NonHttpUrlClientError()
            | httpx.InvalidURL()
            | httpx.UnsupportedProtocol()
        ):
            return ImageError(ErrorCode.INVALID_URL, f"not a valid http or https URL: {exc}")
        case BadEncoding() | httpx.DecodingError():
            detail = f": {exc}" if str(exc) else ""
            return ImageError(
                ErrorCode.CONNECTION_ERROR,
                f"the server sent a body that could not be decoded{detail}",
            )
        case aiohttp.ClientError() | httpx.TransportError():
            detail = str(exc) or type(exc).__name__
            return ImageError(
                ErrorCode.CONNECTION_ERROR,
                f"the connection to the server failed: {detail}",
                retryable=True,
            )
    return None
