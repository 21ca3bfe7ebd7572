"""Pure ASGI middleware of the app: ``HEAD`` on every ``GET`` route, and uploads refused as
soon as they are known to be too large.
"""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The paths that take a CSV upload.
UPLOAD_PATHS = frozenset({"/api/v1/requests", "/upload"})
#: Room for the multipart framing and the other form fields beside the file.
FORM_OVERHEAD = 64 * 1024


class HeadAsGet:
    """Answer ``HEAD`` as the ``GET`` of the same path would, headers only.

    FastAPI registers ``GET`` alone; running the ``GET`` route keeps every header (type,
    length, ``ETag``, cache) exactly as it would be, and the body is dropped here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # The same scope object, so outer middleware (metrics) sees the matched route;
        # its method is HEAD again once the answer is sent.
        scope["method"] = "GET"
        try:
            await self.app(scope, receive, headers_only)
        finally:
            scope["method"] = "HEAD"


class _TooLarge(Exception):
    pass


class UploadLimit:
    """413 for an upload over ``max_bytes``: at once when ``Content-Length`` says so, and
    as soon as a chunked body passes the limit, so no more of it is read or spooled."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS
        ):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        received = 0
        over = started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise _TooLarge
            return message

        async def unless_over(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app makes of the cut body, the answer is our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, unless_over)
        if over and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": f"the upload is larger than {self.max_bytes} bytes, the limit "
                "(IMGBATCH_MAX_UPLOAD_BYTES)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read: the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
