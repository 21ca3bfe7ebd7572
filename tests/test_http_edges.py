"""HTTP edges: HEAD on every GET route, uploads refused at the size limit before they are
read, and bounded pagination."""

from __future__ import annotations

import re
import select
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from imgbatch.storage import open_storage
from tests.helpers import csv_bytes
from tests.live import live_server

BODY = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
IGNORED = {"date"}  # differs between two answers by the clock alone


def test_every_get_route_answers_head_with_the_same_headers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings, work=False)
    with TestClient(app) as client:
        request_id = client.post(
            "/api/v1/requests", files={"file": ("a.csv", BODY, "text/csv")}
        ).json()["request_id"]
        key = f"{request_id}/0.jpg"
        open_storage(settings).put(key, b"\xff\xd8 not really a jpeg")
        values = {"request_id": request_id, "key": key, "name": "chelsea.jpg"}
        paths = [
            re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            for path, operations in app.openapi()["paths"].items()
            if "get" in operations
        ]
        paths += ["/", "/static/app.js", "/docs", "/redoc", "/openapi.json"]
        assert len(paths) > 15
        for path in paths:
            got = client.get(path)
            head = client.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            # /metrics counts the GET just made, so its length moves.
            ignored = IGNORED | ({"content-length"} if path == "/metrics" else set())
            same = {k: v for k, v in got.headers.items() if k not in ignored}
            assert {k: v for k, v in head.headers.items() if k not in ignored} == same, path


@pytest.mark.parametrize("path", ["/api/v1/requests", "/api/v1/requests/{id}/products"])
def test_a_huge_offset_is_a_422(tmp_path: Path, path: str) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path), work=False)) as client:
        request_id = client.post(
            "/api/v1/requests", files={"file": ("a.csv", BODY, "text/csv")}
        ).json()["request_id"]
        url = path.replace("{id}", request_id) + "?offset=99999999999999999999999"
        answer = client.get(url)
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["query", "offset"]
        assert client.get(url.replace("99999999999999999999999", "1000000000")).status_code == 200


LIMIT = 1024 * 1024
HUGE = 200 * LIMIT
BOUNDARY = "imgbatchboundary"


def _headers(port: int, framing: str) -> bytes:
    return (
        f"POST /api/v1/requests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n"
    ).encode()


def _part_head() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()


def _status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _read_answer(sock: socket.socket) -> bytes:
    """The whole answer, head and body: one recv may return the head alone."""
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _send_until_answered(sock: socket.socket, chunked: bool) -> tuple[int, bytes]:
    """Send up to HUGE bytes of body until the server answers; (bytes sent, answer)."""
    block = b"S. No.,Product Name,Input Image Urls\n" + b"1,x,https://a.example/" * 3000
    block = block[: 64 * 1024]
    sent = 0
    payload = _part_head()
    sock.setblocking(False)
    while sent < HUGE:
        readable, writable, _ = select.select([sock], [sock], [], 5)
        if readable:
            break
        if not writable:
            continue
        frame = f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if chunked else payload
        try:
            sock.sendall(frame)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
        sent += len(payload)
        payload = block
    sock.setblocking(True)
    sock.settimeout(10)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return sent, answer


def test_oversized_uploads_are_refused_before_they_are_read(tmp_path: Path) -> None:
    env = {"IMGBATCH_MAX_UPLOAD_BYTES": str(LIMIT)}
    with live_server(tmp_path / "data", env=env) as server:
        # Declared too large: the answer comes before a byte of the body is sent.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(_headers(server.port, f"Content-Length: {HUGE}"))
            sock.settimeout(10)
            started = time.monotonic()
            answer = _read_answer(sock)
            assert _status_of(answer) == 413, answer
            assert b"IMGBATCH_MAX_UPLOAD_BYTES" in answer
            assert time.monotonic() - started < 5

        # Chunked, so no size is declared: reading stops at the limit.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(_headers(server.port, "Transfer-Encoding: chunked"))
            sent, answer = _send_until_answered(sock, chunked=True)
            assert _status_of(answer) == 413, answer
            print(f"chunked upload: {sent / LIMIT:.1f} MiB sent before the 413 (limit 1 MiB)")
            # What was sent past the limit sits in the two sockets' kernel buffers.
            assert sent < 24 * LIMIT, sent
        assert not list((tmp_path / "data").rglob("*.csv"))
