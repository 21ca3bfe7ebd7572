"""The web page: ``/`` is the single page, ``/static/*`` its scripts and styles.

The page is plain HTML, CSS and JavaScript modules in ``imgbatch/web/``, served as they
are (no build step). Its policy allows scripts and styles from this origin only, so even a
string that slipped past the page's escaping could not run as a script.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

router = APIRouter(tags=["web"])

WEB = Path(__file__).resolve().parents[2] / "web"

# Images may come from anywhere (input URLs, S3 or a CDN for outputs); nothing else may.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src * data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate, so a new release's page is picked up at once.
    "Cache-Control": "no-cache",
}


@router.get("/", response_class=FileResponse, include_in_schema=False)
def index() -> FileResponse:
    """The page: upload a CSV, watch progress, inspect and download the result."""
    return FileResponse(WEB / "index.html", media_type="text/html", headers=PAGE_HEADERS)


class RevalidatedFiles(StaticFiles):
    """Static files the browser revalidates (a cheap 304 by ETag), so an upgrade never
    runs a stale script against a newer page."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


router.mount("/static", RevalidatedFiles(directory=WEB), name="static")
