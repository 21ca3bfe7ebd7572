"""The rules of the input CSV (SPEC §1): header names, serials, URL lists, file syntax.

Pure functions returning a human message (or None when the value is fine), so that
``csvfile`` stays about reading and streaming. The common case of each check is a single
compiled regular expression: a 100,000-row file must validate in well under a second.
"""

from __future__ import annotations

import csv
import re
from enum import StrEnum
from urllib.parse import urlsplit

from imgbatch.errors import CsvProblem


class Column(StrEnum):
    SERIAL = "serial"
    NAME = "name"
    URLS = "urls"


# How each column is named in messages: the spelling of the original format.
CANONICAL_NAMES = {
    Column.SERIAL: "S. No.",
    Column.NAME: "Product Name",
    Column.URLS: "Input Image Urls",
}

# Keys as ``column_for`` normalises them: case folded, dots as spaces, spaces collapsed.
_ALIASES = {
    "s no": Column.SERIAL,
    "sno": Column.SERIAL,
    "serial number": Column.SERIAL,
    "serial no": Column.SERIAL,
    "product name": Column.NAME,
    "input image urls": Column.URLS,
}


def column_for(text: str) -> Column | None:
    """The column a header cell names, or None for an unknown name."""
    return _ALIASES.get(" ".join(text.casefold().replace(".", " ").split()))


# --- serial numbers -------------------------------------------------------------------

MAX_SERIAL_DIGITS = 18  # keeps int() cheap and the value within a 64-bit integer
_SERIAL = re.compile(r"\s*([0-9]+)\.?\s*")


def parse_serial(cell: str) -> int | str:
    """The serial's value, or a message saying why the cell is not a valid serial."""
    match = _SERIAL.fullmatch(cell)
    if match is None:
        if not cell.strip():
            return "the serial number is empty"
        return f"serial number {quote(cell)} is not a positive whole number"
    digits = match.group(1)
    if len(digits) > MAX_SERIAL_DIGITS:
        return f"serial number {quote(cell)} is longer than {MAX_SERIAL_DIGITS} digits"
    value = int(digits)
    if value == 0:
        return "the serial number must be 1 or more, not 0"
    return value


# --- image URLs -----------------------------------------------------------------------

# The common shape, accepted without further parsing: scheme, plain host name, port, path.
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_PLAIN = (
    r"(?i:https?)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    + _PORT
    + r"(?:[/?#][^\s,\x00-\x1f\x7f-\x9f]*)?"
)
_PLAIN_URL = re.compile(_PLAIN)
# A whole cell of such URLs, the commas, spaces and newlines around them, trailing commas.
_PLAIN_LIST = re.compile(rf"\s*{_PLAIN}(?:\s*,\s*{_PLAIN})*[\s,]*")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# What a host may hold: letters and digits of any script (IDN), dots, hyphens, and the
# colons of an IPv6 literal.
_HOST = re.compile(r"[\w.\-:]+")


def parse_urls(
    cell: str, max_urls: int, max_length: int
) -> tuple[list[str], list[tuple[int, str]]]:
    """Split a URL cell on commas and check every entry.

    Returns the stripped URLs and the problems as (offset in the cell, message). Trailing
    empty entries ("a,b,") are dropped; an empty entry elsewhere would shift the positions
    of the output URLs against the input, so it is a problem.
    """
    urls = [part.strip() for part in cell.split(",")]
    while urls and not urls[-1]:
        urls.pop()
    if (
        0 < len(urls) <= max_urls
        and _PLAIN_LIST.fullmatch(cell)
        and (len(cell) <= max_length or max(map(len, urls)) <= max_length)
    ):
        return urls, []  # the common case, checked in one pass over the cell
    problems: list[tuple[int, str]] = []
    if not urls:
        problems.append((0, "there is no image URL"))
    elif len(urls) > max_urls:
        problems.append((0, f"{len(urls)} image URLs; a row may have at most {max_urls}"))
    offset = 0
    for position, (part, url) in enumerate(zip(cell.split(","), urls, strict=False), 1):
        start = offset + len(part) - len(part.lstrip())  # where the entry's text begins
        offset += len(part) + 1
        if not url:
            problems.append((start, f"URL {position} is empty (two commas in a row?)"))
        elif (message := url_problem(url, max_length)) is not None:
            problems.append((start, f"URL {position} {quote(url)} {message}"))
    return urls, problems


def url_problem(url: str, max_length: int) -> str | None:
    """Why ``url`` is not an acceptable image URL, or None.

    Only the form is checked; whether the address may be fetched is decided at fetch
    time (SPEC §1: a forbidden address fails that image, not the file).
    """
    if len(url) > max_length:
        return f"is longer than {max_length} characters"
    if _PLAIN_URL.fullmatch(url):
        return None
    if _SPACE_OR_CONTROL.search(url):
        return "contains a space or a control character (a missing comma between two URLs?)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not scheme or not parts.netloc:
            return "is not an absolute URL: it must start with http:// or https://"
        return f"uses {scheme}:, but only http:// and https:// URLs can be fetched"
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "has an invalid port number"
    if not host:
        return "has no host name"
    if not _HOST.fullmatch(host):
        return f"has an invalid host name {quote(host)}"
    return None


def quote(text: str, limit: int = 80) -> str:
    """A cell value shown in a message: quoted, and shortened when long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f'"{text}"'


def line_breaks(text: str) -> int:
    """Physical line breaks in ``text`` (LF, CRLF or a lone CR each count once)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


# --- the file as a whole ---------------------------------------------------------------


def syntax_problem(error: str, start: int, line: int) -> CsvProblem:
    """A csv module error as a problem a person can act on."""
    if "end of data" in error:
        return CsvProblem(
            start, None, 'a quoted cell that starts here is never closed (a " is missing)'
        )
    if "expected after" in error:
        where = f" (the quoted cell started on line {start})" if start != line else ""
        message = (
            'a closing " must be followed by a comma or the end of the line; '
            f'write a " inside a quoted cell as ""{where}'
        )
        return CsvProblem(line, None, message)
    if "field larger than" in error:
        return CsvProblem(
            start, None, f"a cell is longer than {csv.field_size_limit():,} characters"
        )
    return CsvProblem(line, None, f"this line cannot be read as CSV: {error}")
