"""A real HTTP origin on 127.0.0.1 for tests: serves files and crafted answers.

Tests register routes (path -> handler) and get absolute URLs back. Each handler gets the
request handler object and writes the whole answer itself, so a route can answer any
status, stall, stream without end or redirect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Handler = Callable[[BaseHTTPRequestHandler], None]


def send_bytes(
    req: BaseHTTPRequestHandler,
    body: bytes,
    *,
    status: int = 200,
    content_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> None:
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        req.send_header(name, value)
    req.end_headers()
    if req.command != "HEAD":
        req.wfile.write(body)


class Origin:
    """A threaded HTTP server; ``hits`` counts requests per path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.delay = 0.0
        self._lock = threading.Lock()
        origin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _dispatch(self) -> None:
                path = self.path.split("?", 1)[0]
                with origin._lock:
                    origin.hits[path] = origin.hits.get(path, 0) + 1
                if origin.delay:
                    threading.Event().wait(origin.delay)
                handler = origin.routes.get(path)
                if handler is None:
                    send_bytes(self, b"not found", status=404, content_type="text/plain")
                    return
                try:
                    handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _dispatch
            do_HEAD = _dispatch
            do_POST = _dispatch

        self.server = ThreadingHTTPServer((host, 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Origin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.base_url + path

    def serve_bytes(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        return self.route(path, lambda req: send_bytes(req, body, content_type=content_type))

    def serve_file(self, path: str, file: Path, content_type: str = "image/jpeg") -> str:
        return self.serve_bytes(path, file.read_bytes(), content_type)

    def url(self, path: str) -> str:
        return self.base_url + path
