"""Room for a body: a download reads its body only once the caller has room for it (a
worker process holds IMAGES_IN_HAND bodies at once), and an answer without a body needs
none. What keeps a worker's memory flat whatever the chunk size, while a re-run still
revalidates a whole chunk at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from imgbatch.config import Settings
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.fetcher import Fetcher
from imgbatch.pipeline import Hand
from tests.origin import Origin, answer, in_turn, redirect, send_bytes

pytestmark = pytest.mark.anyio

IMAGE = b"\xff\xd8\xff\xe0" + b"pixels" * 1000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_fetcher(origin: Origin, **settings: Any) -> Fetcher:
    values: dict[str, Any] = {"fetch_timeout": 5.0, "fetch_retries": 0, **settings}
    return Fetcher(
        Settings(**values), policy=AddressPolicy([f"127.0.0.1:{origin.port}"]), backoff_base=0.01
    )


class Recorded:
    """A room that opens when told to, and counts what was asked of it."""

    def __init__(self, *, open_: bool = True) -> None:
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()
        self.takes = 0
        self.give_backs = 0

    async def take(self) -> None:
        self.takes += 1
        await self.opened.wait()

    def give_back(self) -> None:
        self.give_backs += 1


async def test_the_body_waits_for_room_and_the_wait_is_not_timed(origin: Origin) -> None:
    url = origin.serve_bytes("/a.jpg", IMAGE)
    room = Recorded(open_=False)
    async with make_fetcher(origin, fetch_timeout=0.5) as fetcher:
        download = asyncio.create_task(fetcher.fetch(url, room=room))
        await asyncio.sleep(1.0)  # twice the download's deadline
        assert room.takes == 1 and not download.done()
        room.opened.set()
        fetched = await download
    assert fetched.content == IMAGE
    assert origin.hits == {"/a.jpg": 1}
    assert room.give_backs == 0  # the caller keeps it until its image is done


async def test_answers_without_a_body_take_no_room(origin: Origin) -> None:
    origin.route("/same.jpg", answer(304, headers={"ETag": '"v1"'}))
    origin.route("/moved.jpg", redirect("/same.jpg"))
    origin.route("/gone.jpg", answer(404))
    room = Recorded()
    async with make_fetcher(origin) as fetcher:
        revalidated = await fetcher.fetch(
            origin.url("/moved.jpg"), conditions={"If-None-Match": '"v1"'}, room=room
        )
        assert revalidated.not_modified
        with pytest.raises(Exception, match="404"):
            await fetcher.fetch(origin.url("/gone.jpg"), room=room)
    assert room.takes == 0


async def test_a_failed_attempt_gives_its_room_back_before_the_retry(origin: Origin) -> None:
    def cut_short(req: Any) -> None:
        req.send_response(200)
        req.send_header("Content-Length", str(len(IMAGE)))
        req.end_headers()
        req.wfile.write(IMAGE[:100])
        req.close_connection = True

    origin.route("/a.jpg", in_turn(cut_short, lambda req: send_bytes(req, IMAGE)))
    room = Recorded()
    async with make_fetcher(origin, fetch_retries=1) as fetcher:
        fetched = await fetcher.fetch(origin.url("/a.jpg"), room=room)
    assert fetched.content == IMAGE
    assert (room.takes, room.give_backs) == (2, 1)


async def test_a_full_hand_holds_the_next_bodies_until_an_image_is_done(origin: Origin) -> None:
    urls = [origin.serve_bytes(f"/{n}.jpg", IMAGE) for n in range(5)]
    room = asyncio.Semaphore(2)
    hands = [Hand(room) for _ in urls]
    async with make_fetcher(origin) as fetcher:
        downloads = [
            asyncio.create_task(fetcher.fetch(url, room=hand))
            for url, hand in zip(urls, hands, strict=True)
        ]
        await asyncio.sleep(0.5)
        # Every request went out at once; two bodies were read, three wait for room.
        assert sum(origin.hits.values()) == 5
        done = [n for n, download in enumerate(downloads) if download.done()]
        assert len(done) == 2
        hands[done[0]].give_back()  # that image is compressed and stored
        await asyncio.sleep(0.3)
        assert sum(download.done() for download in downloads) == 3
        for hand in hands:
            hand.give_back()
        assert all(f.content == IMAGE for f in await asyncio.gather(*downloads))
