"""A benchmark image origin: ``/p/<n>/<photo>`` serves a corpus photo after a fixed delay.

Runs in its own process (``python -m bench.origin --port P --delay-ms D``) so serving
does not share a GIL with what is measured. Distinct ``n`` make distinct URLs;
``/u/<n>/<photo>`` also makes distinct bytes (a JPEG comment naming ``n``), so no two
images are the same input; ``/v/<n>/<photo>`` is another URL for the same bytes.
``--cache-control V`` sends ``Cache-Control: V`` and a strong ``ETag``, and answers a
matching ``If-None-Match`` with 304. ``GET /_hits`` counts the image requests so far.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "photos"


def unique(data: bytes, n: str) -> bytes:
    """The same picture, different bytes: a comment segment right after the JPEG's SOI."""
    comment = f"bench {n}".encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def serve(
    port: int, delay: float, extra: Path | None = None, cache_control: str | None = None
) -> None:
    files = {p.name: p.read_bytes() for p in PHOTOS.glob("*.jpg")}
    if extra is not None:
        files.update({p.name: p.read_bytes() for p in extra.glob("*.jpg")})
    answered = [0]  # image requests so far
    lock = threading.Lock()

    # Kept like a real origin keeps them (file metadata), not hashed again per request:
    # the origin shares the cores with what is measured.
    etags: dict[str, str] = {}

    def etag_of(path: str, body: bytes) -> str:
        if path not in etags:
            etags[path] = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        return etags[path]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/_hits":
                self._send(200, str(answered[0]).encode())
                return
            with lock:
                answered[0] += 1
            if delay:
                time.sleep(delay)
            # A revalidation that matches is answered from the kept ETag alone, as a real
            # origin answers from its metadata.
            known = etags.get(self.path)
            if cache_control is not None and known and self.headers.get("If-None-Match") == known:
                headers = {"Content-Type": "image/jpeg", "Cache-Control": cache_control}
                self._send(304, b"", {**headers, "ETag": known})
                return
            parts = self.path.split("/")
            body = files.get(parts[-1])
            if body is not None and len(parts) == 4 and parts[1] in ("u", "v"):
                body = unique(body, parts[2])
            if body is None:
                self._send(404, b"")
                return
            headers = {"Content-Type": "image/jpeg"}
            if cache_control is not None:
                headers["Cache-Control"] = cache_control
                headers["ETag"] = etag_of(self.path, body)
            self._send(200, body, headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = Origin(("127.0.0.1", port), Handler)
    server.serve_forever()


class Origin(ThreadingHTTPServer):
    daemon_threads = True
    # listen()'s backlog, read as the server binds: set on the instance afterwards, it was
    # 5, and a worker's first connections found their SYNs dropped (retried after 1 s).
    request_queue_size = 256

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # A client that went away mid-answer (the stop bench kills its run) is no error of
        # the origin's: only anything else is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--extra", type=Path)
    parser.add_argument("--cache-control")
    args = parser.parse_args()
    serve(args.port, args.delay_ms / 1000, args.extra, args.cache_control)
