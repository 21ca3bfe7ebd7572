"""A real HTTP origin on 127.0.0.1 for tests: serves files and crafted answers.

Tests register routes (path -> handler) and get absolute URLs back. Each handler gets the
request handler object and writes the whole answer itself, so a route can answer any
status, stall, stream without end or redirect.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

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


class _Server4(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops the SYNs of a burst of new connections, which
    # then arrive a second late (the client's retransmit), as no real origin behaves.
    request_queue_size = 128


class _Server6(_Server4):
    address_family = socket.AF_INET6


class Origin:
    """A threaded HTTP server; ``hits`` counts requests per path.

    ``max_in_flight`` is the most requests it served at once; ``last_headers`` the headers
    of the last request per path. ``host`` may be an IPv6 loopback ("::1"), ``port`` a
    fixed one, and ``tls`` a server SSLContext to answer HTTPS.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.last_headers: dict[str, dict[str, str]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        # (path, monotonic time) of every request as it arrived, in order.
        self.arrivals: list[tuple[str, float]] = []
        # With track_peers: (path, the asking process and its ancestors' pids) per request.
        self.track_peers = False
        self.peers: list[tuple[str, list[int]]] = []
        self.delay = 0.0
        self.stopping = threading.Event()  # handlers that stall or stream wait on this
        self._lock = threading.Lock()
        origin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _dispatch(self) -> None:
                path = self.path.split("?", 1)[0]
                with origin._lock:
                    origin.arrivals.append((path, time.monotonic()))
                    origin.hits[path] = origin.hits.get(path, 0) + 1
                    origin.last_headers[path] = dict(self.headers.items())
                    origin.in_flight += 1
                    origin.max_in_flight = max(origin.max_in_flight, origin.in_flight)
                if origin.track_peers:
                    asker = client_process(self)
                    lineage = [asker.pid, *(p.pid for p in asker.parents())] if asker else []
                    with origin._lock:
                        origin.peers.append((path, lineage))
                try:
                    self._answer(path)
                finally:
                    with origin._lock:
                        origin.in_flight -= 1

            def _answer(self, path: str) -> None:
                if origin.delay:
                    threading.Event().wait(origin.delay)
                handler = origin.routes.get(path)
                if handler is None:
                    send_bytes(self, b"not found", status=404, content_type="text/plain")
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    handler(self)

            do_GET = _dispatch
            do_HEAD = _dispatch
            do_POST = _dispatch

        server_class = _Server6 if ":" in host else _Server4
        self.server = server_class((host, port), _Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if tls else 'http'}://{url_host}:{self.port}"
        # A short poll interval keeps stop() (which waits for one poll) fast.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> Origin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
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


# Crafted answers: each returns a handler for ``Origin.route``.


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """A fixed answer with any status and headers."""
    return lambda req: send_bytes(req, body, status=status, headers=headers)


def redirect(location: str, status: int = 302) -> Handler:
    return answer(status, headers={"Location": location})


def in_turn(*handlers: Handler) -> Handler:
    """The first request gets the first handler, and so on; the last one repeats."""
    turns = itertools.chain(handlers, itertools.repeat(handlers[-1]))
    lock = threading.Lock()

    def handle(req: BaseHTTPRequestHandler) -> None:
        with lock:
            handler = next(turns)
        handler(req)

    return handle


def slow(body: bytes, seconds: float) -> Handler:
    """Answers ``body`` after ``seconds``: to see how many requests arrive at once."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        threading.Event().wait(seconds)
        send_bytes(req, body)

    return handle


def stall(origin: Origin, head: bytes, declared: int) -> Handler:
    """Announces ``declared`` bytes, sends ``head``, then goes silent until the origin stops."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", str(declared))
        req.end_headers()
        req.wfile.write(head)
        req.wfile.flush()
        origin.stopping.wait(60)

    return handle


def endless(origin: Origin, chunk: bytes = b"\xff" * 65536, limit: int = 1 << 30) -> Handler:
    """A body without a length that goes on until the client leaves (or ``limit`` bytes)."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Connection", "close")
        req.end_headers()
        req.close_connection = True
        written = 0
        while written < limit and not origin.stopping.is_set():
            req.wfile.write(chunk)
            written += len(chunk)

    return handle


def trickle(origin: Origin, body: bytes, every: float) -> Handler:
    """Sends ``body`` one byte at a time, a byte every ``every`` seconds: never idle for long,
    never done soon."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        for index in range(len(body)):
            if origin.stopping.wait(every):
                return
            req.wfile.write(body[index : index + 1])
            req.wfile.flush()

    return handle


def hang_up(req: BaseHTTPRequestHandler) -> None:
    """Closes the connection without answering."""
    req.close_connection = True


def client_process(req: BaseHTTPRequestHandler) -> psutil.Process | None:
    """The process (among this test's descendants) whose socket made this request."""
    peer = req.client_address[1]
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for connection in process.net_connections(kind="tcp"):
                if connection.laddr and connection.laddr.port == peer:
                    return process
    return None


def kill_client(req: BaseHTTPRequestHandler) -> None:
    """SIGKILLs the process that asked, every time: an image that kills whoever
    handles it, without any backdoor in the product."""
    process = client_process(req)
    assert process is not None, "no descendant of the test holds this connection"
    os.kill(process.pid, signal.SIGKILL)
    req.close_connection = True
