"""A worker process takes its next chunk while the last one's tail compresses, and a
process that dies with only a tail running still hands that tail back."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from fastapi.testclient import TestClient

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import csv_bytes, wait_terminal
from tests.origin import Handler, Origin, client_process


def slow_body(body: bytes, *, seconds: float, kill: bool = False) -> tuple[Handler, list[float]]:
    """A route whose first answer sends its headers and half its body at once, the rest
    ``seconds`` later (or, with ``kill``, SIGKILLs the asking process then); later answers
    are whole. Also returns the list it appends the time of that first body's end to."""
    ended: list[float] = []
    first = threading.Lock()

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not first.acquire(blocking=False):
            req.wfile.write(body)
            return
        half = len(body) // 2
        req.wfile.write(body[:half])
        req.wfile.flush()
        time.sleep(seconds)
        if kill:
            process = client_process(req)
            assert process is not None
            process.kill()
            req.close_connection = True
            return
        req.wfile.write(body[half:])
        ended.append(time.monotonic())

    return handle, ended


def settings_for(tmp_path: Path, origin: Origin) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=f"127.0.0.1:{origin.port}",
        workers=1,
        chunk_size=4,
        fetch_retries=0,
    )


def test_the_next_chunk_downloads_while_the_last_one_finishes(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    handle, ended = slow_body(photos[0].read_bytes(), seconds=2.0)
    slow = photo_origin.route("/slow.jpg", handle)
    others = [photo_origin.serve_file(f"/c{i}.jpg", photos[i % len(photos)]) for i in range(7)]
    rows = [(1, "SKU1", [slow, *others[:3]]), (2, "SKU2", others[3:])]
    with TestClient(create_app(settings_for(tmp_path, photo_origin))) as client:
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        final = wait_terminal(client, body["request_id"], timeout=60)
    assert final["status"] == "completed" and final["processed_images"] == 8, final
    # One worker process, chunks of 4: the second chunk's images were asked for while the
    # first chunk's slow body was still arriving, not after that chunk was recorded.
    second = {f"/c{i}.jpg" for i in range(3, 7)}
    second_chunk = [t for path, t in photo_origin.arrivals if path in second]
    assert second_chunk and ended and min(second_chunk) < ended[0]


def test_a_process_that_dies_with_only_a_tail_running_hands_it_back(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    handle, _ = slow_body(photos[0].read_bytes(), seconds=1.0, kill=True)
    slow = photo_origin.route("/dies.jpg", handle)
    others = [photo_origin.serve_file(f"/d{i}.jpg", photos[i]) for i in range(3)]
    # One chunk: once its three other images are done and the slow one holds its body, its
    # call has returned, and the process dies with no call pending.
    rows = [(1, "SKU1", [slow, *others])]
    with TestClient(create_app(settings_for(tmp_path, photo_origin))) as client:
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        final = wait_terminal(client, body["request_id"], timeout=60)
    assert final["status"] == "completed" and final["processed_images"] == 4, final
    assert photo_origin.hits["/dies.jpg"] == 2  # killed once, then fetched whole
