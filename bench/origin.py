"""A benchmark image origin: ``/p/<n>/<photo>`` serves a corpus photo after a fixed delay.

Runs in its own process (``python -m bench.origin --port P --delay-ms D``) so serving
does not share a GIL with what is measured. Distinct ``n`` make distinct URLs.
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "photos"


def serve(port: int, delay: float, extra: Path | None = None) -> None:
    files = {p.name: p.read_bytes() for p in PHOTOS.glob("*.jpg")}
    if extra is not None:
        files.update({p.name: p.read_bytes() for p in extra.glob("*.jpg")})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files.get(self.path.rsplit("/", 1)[-1])
            if delay:
                time.sleep(delay)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--extra", type=Path)
    args = parser.parse_args()
    serve(args.port, args.delay_ms / 1000, args.extra)
