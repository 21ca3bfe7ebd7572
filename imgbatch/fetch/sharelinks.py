"""Share links of file hosts, rewritten to the direct download they stand for.

People paste the link a host's "Share" button gives, which opens a web page about the
file rather than the file. The rules (README, "Share links"):

- Google Drive ``/file/d/<id>/view`` (or ``/edit``, ``/preview``, nothing) and
  ``/open?id=<id>`` become ``/uc?export=download&id=<id>``.
- Dropbox ``?dl=0`` becomes ``?dl=1``; the other query parameters stay.

Scheme, host and port are kept. Only these hosts are touched, and a web page (HTML) still
coming back from one of them gets a message saying what to do instead.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from imgbatch.errors import ErrorCode, ImageError

GOOGLE_DRIVE_HOSTS = frozenset({"drive.google.com"})
DROPBOX_HOSTS = frozenset({"dropbox.com", "www.dropbox.com"})
WEB_PAGE_MESSAGE = "this link points at a web page; share a direct link"

_DRIVE_FILE = re.compile(r"/file/d/([A-Za-z0-9_-]+)(?:/(?:view|edit|preview)?)?")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_share_host(url: str) -> bool:
    return _host(url) in GOOGLE_DRIVE_HOSTS | DROPBOX_HOSTS


def direct_download_url(url: str) -> str:
    """The direct-download form of a share link; any other URL unchanged."""
    host = _host(url)
    if host in GOOGLE_DRIVE_HOSTS:
        return _google_drive(url)
    if host in DROPBOX_HOSTS:
        return _dropbox(url)
    return url


def _google_drive(url: str) -> str:
    parts = urlsplit(url)
    file_id: str | None = None
    if match := _DRIVE_FILE.fullmatch(parts.path):
        file_id = match.group(1)
    elif parts.path in ("/open", "/open/"):
        file_id = dict(parse_qsl(parts.query)).get("id")
    if not file_id:
        return url
    query = urlencode({"export": "download", "id": file_id})
    return urlunsplit((parts.scheme, parts.netloc, "/uc", query, ""))


def _dropbox(url: str) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if ("dl", "0") not in pairs:
        return url
    query = urlencode([(key, "1" if key == "dl" else value) for key, value in pairs])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def web_page_error(url: str, content_type: str | None) -> ImageError | None:
    """The error for a share host answering with a web page instead of the file."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if is_share_host(url) and media in ("text/html", "application/xhtml+xml"):
        return ImageError(ErrorCode.NOT_AN_IMAGE, WEB_PAGE_MESSAGE)
    return None
