"""/redoc from the ReDoc file the package ships, under a policy that keeps it on this host.

``/docs`` (Swagger UI) comes from ``fastapi_offline`` as it is. ReDoc's page also shows
a logo from its vendor's CDN; the policy below blocks that one image, so the browser asks
no other host for anything.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC_DOCS = "/static-docs"
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search runs in a worker made from a blob
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    )
)


@router.get("/redoc")
def redoc() -> HTMLResponse:
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="imgbatch - ReDoc",
        redoc_js_url=f"{STATIC_DOCS}/redoc.standalone.js",
        redoc_favicon_url="/static/favicon.svg",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page
