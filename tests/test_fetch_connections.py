"""Pooled connections to an origin: kept while the server keeps them, dropped (and the
download still made, on a new connection) once the server has closed them while idle."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from imgbatch.config import Settings
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.fetcher import Fetcher

pytestmark = pytest.mark.anyio

IMAGE = b"\xff\xd8\xff\xe0" + b"pixels" * 100
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: "
    + str(len(IMAGE)).encode()
    + b"\r\n\r\n"
    + IMAGE
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class KeepAliveServer:
    """Answers every request on a connection with the image, keeping the connection
    open; with ``close_after_answer`` it closes each connection once it has answered
    (with no ``Connection: close``: the client learns of it only from the socket)."""

    def __init__(self, *, close_after_answer: bool) -> None:
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffered += data
                _, _, buffered = buffered.partition(b"\r\n\r\n")
                self.requests += 1
                conn.sendall(ANSWER)
                if self.close_after_answer:
                    return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(params=[False, True], ids=["kept", "closed-by-server"])
def server(request: pytest.FixtureRequest) -> Iterator[KeepAliveServer]:
    server = KeepAliveServer(close_after_answer=request.param)
    yield server
    server.close()


async def test_an_idle_connection_is_reused_until_the_server_closes_it(
    server: KeepAliveServer,
) -> None:
    fetcher = Fetcher(
        Settings(fetch_retries=0, fetch_timeout=5.0),
        policy=AddressPolicy([f"127.0.0.1:{server.port}"]),
    )
    try:
        for n in range(3):
            fetched = await fetcher.fetch(f"http://127.0.0.1:{server.port}/{n}.jpg")
            assert fetched.content == IMAGE
            await asyncio.sleep(0.1)  # a server's close reaches our socket meanwhile
    finally:
        await fetcher.aclose()
    assert server.requests == 3
    assert server.connections == (3 if server.close_after_answer else 1)


async def test_each_origin_keeps_its_idle_connection_while_another_is_used() -> None:
    first, second = (KeepAliveServer(close_after_answer=False) for _ in range(2))
    fetcher = Fetcher(
        Settings(fetch_retries=0, fetch_timeout=5.0, fetch_concurrency=1),
        policy=AddressPolicy([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]),
    )
    try:
        for server in (first, second, first):
            fetched = await fetcher.fetch(f"http://127.0.0.1:{server.port}/a.jpg")
            assert fetched.content == IMAGE
    finally:
        await fetcher.aclose()
        first.close()
        second.close()
    # One download at a time, but an idle connection does not count against that limit:
    # the third download went out on the first origin's kept connection.
    assert (first.connections, second.connections) == (1, 1)
    assert (first.requests, second.requests) == (2, 1)


async def test_a_download_still_connecting_does_not_hold_the_codec_off_the_loop() -> None:
    """The codec runs on the loop's thread once every download told to go on has written
    its request (``Fetcher.requests_written``); one whose connect hangs (here: a listener
    whose queue is full drops the SYN, which is retried after a second) is not waited for,
    or every compress would go to a thread for as long as the connect takes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # never accepted: the listener's queue fills up
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        queued.append(client)
    fetcher = Fetcher(
        Settings(fetch_retries=0, fetch_timeout=5.0),
        policy=AddressPolicy([f"127.0.0.1:{port}"]),
    )
    told = asyncio.Event()

    async def go_on() -> bool:
        told.set()
        return True

    download = asyncio.create_task(fetcher.fetch(f"http://127.0.0.1:{port}/a.jpg", go_on=go_on))
    try:
        await told.wait()
        await asyncio.sleep(0.2)
        assert not download.done()  # still connecting
        assert await fetcher.requests_written(0.05)
    finally:
        download.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await download
        await fetcher.aclose()
        for client in queued:
            client.close()
        listener.close()
