"""What a response allows us to reuse, read as RFC 9111 says (SPEC §9).

We are a *shared* cache: the outputs made from one tenant's download are handed to any
later request. So ``s-maxage`` wins over ``max-age``, and ``private`` responses are never
recorded, like ``no-store`` ones. There is no heuristic freshness (RFC 9111 §4.2.2 allows
but never requires it): a response without ``max-age``/``s-maxage``/``Expires`` is
revalidated every time. We never serve stale, so ``must-revalidate`` changes nothing.

Validators are kept only when they prove the bytes are the same: a strong ``ETag`` (a
weak ``W/`` one only says "equivalent"), and a ``Last-Modified`` at least one second
before the response's ``Date`` (RFC 9110 §8.8.2.2: otherwise a change within that second
would go unseen).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# A directive and its optional value (a token or a quoted string), RFC 9110 §5.6.
_DIRECTIVE = re.compile(
    r"""\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?"""
)


@dataclass(frozen=True)
class CachePolicy:
    """What one response lets us record and reuse."""

    store: bool  # False: no-store or private, nothing of it is recorded
    fresh_until: datetime | None  # reuse without asking until then; None: always revalidate
    etag: str | None  # strong only, as received (quotes included)
    last_modified: str | None  # as received, sent back verbatim in If-Modified-Since

    def conditions(self) -> dict[str, str]:
        """The headers of a conditional GET for what this response validated."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def cache_control(value: str | None) -> dict[str, str]:
    """``Cache-Control`` directives, names lowercased, values unquoted ("" when none)."""
    directives: dict[str, str] = {}
    for part in _split_outside_quotes(value or ""):
        match = _DIRECTIVE.fullmatch(part.strip()) if part.strip() else None
        if match:
            raw = match.group(2) or ""
            text = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
            directives.setdefault(match.group(1).lower(), text)
    return directives


def read_policy(
    headers: Mapping[str, str],
    *,
    requested_at: datetime,
    received_at: datetime,
    redirected: bool,
) -> CachePolicy:
    """The policy of a final response (200 or 304) and its headers (case-insensitive)."""
    directives = cache_control(headers.get("cache-control"))
    if "no-store" in directives or "private" in directives:
        return CachePolicy(store=False, fresh_until=None, etag=None, last_modified=None)
    date = _http_date(headers.get("date")) or received_at
    etag = headers.get("etag")
    last_modified = headers.get("last-modified")
    modified = _http_date(last_modified)
    strong_date = modified is not None and date - modified >= timedelta(seconds=1)
    return CachePolicy(
        store=True,
        fresh_until=_fresh_until(
            headers, directives, date, requested_at, received_at, redirected=redirected
        ),
        etag=etag.strip() if etag and etag.strip().startswith('"') else None,
        last_modified=last_modified if strong_date else None,
    )


def _fresh_until(
    headers: Mapping[str, str],
    directives: Mapping[str, str],
    date: datetime,
    requested_at: datetime,
    received_at: datetime,
    *,
    redirected: bool,
) -> datetime | None:
    # A redirect's own freshness is not recorded, so the hop may change: always ask.
    # "Vary: *" never matches a later request without asking the origin (§4.1).
    if redirected or "no-cache" in directives or headers.get("vary", "").strip() == "*":
        return None
    lifetime = _lifetime(headers, directives, date)
    if lifetime is None:
        return None
    # §4.2.3: the age the response already had when we received it.
    apparent_age = max(timedelta(0), received_at - date)
    age = _seconds(headers.get("age")) or 0
    corrected_age = timedelta(seconds=age) + (received_at - requested_at)
    fresh_until = received_at + lifetime - max(apparent_age, corrected_age)
    return fresh_until if fresh_until > received_at else None


def _lifetime(
    headers: Mapping[str, str], directives: Mapping[str, str], date: datetime
) -> timedelta | None:
    """§4.2.1 for a shared cache: s-maxage, then max-age, then Expires minus Date."""
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = _seconds(directives[name])
            return timedelta(seconds=seconds) if seconds is not None else None  # invalid: stale
    if "expires" in headers:
        expires = _http_date(headers["expires"])  # invalid (e.g. "0"): already expired
        return expires - date if expires is not None else None
    return None


def _seconds(value: str | None) -> int | None:
    """A delta-seconds value (§1.2.2), or None when it is not one."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _split_outside_quotes(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
