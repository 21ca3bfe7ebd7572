"""Fetching as catalogue hosts expect: headers, share links, compressed bodies, bombs.

Real servers on loopback; share-link hosts are pointed at the local origin by the
fetcher's resolver, so the rewritten request is the one the origin really receives.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import anyio
import psutil
import pytest

import imgbatch
from imgbatch.config import Settings
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.fetcher import Fetcher
from imgbatch.fetch.sharelinks import WEB_PAGE_MESSAGE, direct_download_url
from imgbatch.fetch.transport import Resolver
from tests.origin import Origin, send_bytes
from tests.test_fetch import IMAGE, MiB, anyio_backend  # noqa: F401  (fixture)

pytestmark = pytest.mark.anyio


def loopback_resolver() -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    return resolve


def make_fetcher(origin: Origin, **settings: Any) -> Fetcher:
    values: dict[str, Any] = {"fetch_timeout": 10.0, "fetch_retries": 0, **settings}
    return Fetcher(
        Settings(**values),
        policy=AddressPolicy([f"127.0.0.1:{origin.port}"]),
        resolver=loopback_resolver(),
    )


async def failure(fetcher: Fetcher, url: str) -> ImageError:
    with pytest.raises(ImageError) as caught:
        await fetcher.fetch(url)
    return caught.value


# --- request headers -------------------------------------------------------------------


async def test_the_default_user_agent_names_the_product_and_its_version(origin: Origin) -> None:
    url = origin.serve_bytes("/a.jpg", IMAGE)
    async with make_fetcher(origin) as fetcher:
        await fetcher.fetch(url)
    sent = origin.last_headers["/a.jpg"]
    assert sent["User-Agent"] == f"imgbatch/{imgbatch.__version__} (image fetcher)"
    accept = [part.strip() for part in sent["Accept"].split(",")]
    # The formats we decode come first, unweighted; anything else only after them.
    assert accept[:3] == ["image/jpeg", "image/png", "image/webp"]
    assert "image/svg+xml" not in sent["Accept"]
    assert accept[-1] == "*/*;q=0.5"
    assert sent["Accept-Encoding"] == "identity"


async def test_the_user_agent_is_configurable(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGBATCH_USER_AGENT", "AcmeCatalogue/2.0 (+https://acme.example/bot)")
    url = origin.serve_bytes("/a.jpg", IMAGE)
    fetcher = Fetcher(
        Settings(fetch_retries=0),
        policy=AddressPolicy([f"127.0.0.1:{origin.port}"]),
    )
    async with fetcher:
        await fetcher.fetch(url)
    assert origin.last_headers["/a.jpg"]["User-Agent"] == (
        "AcmeCatalogue/2.0 (+https://acme.example/bot)"
    )


def test_a_user_agent_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="user_agent"):
        Settings(user_agent="imgbatch\r\nX-Injected: 1")


# --- share links -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shared", "direct"),
    [
        (
            "https://drive.google.com/file/d/1AbC-d_9/view?usp=sharing",
            "https://drive.google.com/uc?export=download&id=1AbC-d_9",
        ),
        (
            "https://drive.google.com/file/d/1AbC-d_9/view",
            "https://drive.google.com/uc?export=download&id=1AbC-d_9",
        ),
        (
            "https://drive.google.com/file/d/1AbC-d_9",
            "https://drive.google.com/uc?export=download&id=1AbC-d_9",
        ),
        (
            "https://drive.google.com/open?id=1AbC-d_9",
            "https://drive.google.com/uc?export=download&id=1AbC-d_9",
        ),
        (
            "https://www.dropbox.com/s/abc123/shoe.jpg?dl=0",
            "https://www.dropbox.com/s/abc123/shoe.jpg?dl=1",
        ),
        (
            "https://www.dropbox.com/scl/fi/xyz/shoe.jpg?rlkey=k9&dl=0",
            "https://www.dropbox.com/scl/fi/xyz/shoe.jpg?rlkey=k9&dl=1",
        ),
        # Already direct, or not a share host: unchanged.
        (
            "https://drive.google.com/uc?export=download&id=1AbC",
            "https://drive.google.com/uc?export=download&id=1AbC",
        ),
        (
            "https://www.dropbox.com/s/abc/shoe.jpg?dl=1",
            "https://www.dropbox.com/s/abc/shoe.jpg?dl=1",
        ),
        ("https://cdn.example/file/d/1AbC/view", "https://cdn.example/file/d/1AbC/view"),
        ("https://cdn.example/shoe.jpg?dl=0", "https://cdn.example/shoe.jpg?dl=0"),
    ],
)
def test_share_links_are_rewritten_to_their_direct_download(shared: str, direct: str) -> None:
    assert direct_download_url(shared) == direct


def recording(paths: list[str], body: bytes, content_type: str = "image/jpeg") -> Any:
    def handle(req: BaseHTTPRequestHandler) -> None:
        paths.append(req.path)
        send_bytes(req, body, content_type=content_type)

    return handle


@pytest.mark.parametrize(
    ("shared_path", "asked_path"),
    [
        ("/file/d/1AbC-d_9/view?usp=sharing", "/uc?export=download&id=1AbC-d_9"),
        ("/open?id=1AbC-d_9", "/uc?export=download&id=1AbC-d_9"),
    ],
)
async def test_a_google_drive_share_link_fetches_the_direct_download(
    origin: Origin, shared_path: str, asked_path: str
) -> None:
    paths: list[str] = []
    origin.route("/uc", recording(paths, IMAGE))
    url = f"http://drive.google.com:{origin.port}{shared_path}"
    async with make_fetcher(origin) as fetcher:
        fetched = await fetcher.fetch(url)
    assert paths == [asked_path]
    assert fetched.content == IMAGE
    assert fetched.url == url  # the image is still recorded under the link the user gave


async def test_a_dropbox_share_link_fetches_the_direct_download(origin: Origin) -> None:
    paths: list[str] = []
    origin.route("/s/abc123/shoe.jpg", recording(paths, IMAGE))
    url = f"http://www.dropbox.com:{origin.port}/s/abc123/shoe.jpg?dl=0"
    async with make_fetcher(origin) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert paths == ["/s/abc123/shoe.jpg?dl=1"]


async def test_a_web_page_from_a_share_host_says_to_share_a_direct_link(origin: Origin) -> None:
    page = b"<!doctype html><title>Google Drive - Virus scan warning</title>"
    origin.route("/uc", recording([], page, content_type="text/html; charset=utf-8"))
    async with make_fetcher(origin) as fetcher:
        error = await failure(fetcher, f"http://drive.google.com:{origin.port}/file/d/big/view")
    assert error.code is ErrorCode.NOT_AN_IMAGE
    assert error.message == WEB_PAGE_MESSAGE


async def test_a_web_page_from_another_host_is_left_to_the_decoder(origin: Origin) -> None:
    page = b"<!doctype html><title>Product page</title>"
    url = origin.route("/p", recording([], page, content_type="text/html"))
    async with make_fetcher(origin) as fetcher:
        fetched = await fetcher.fetch(url)
    assert fetched.content == page  # imaging reports it as a web page, in its own words


# --- compressed bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
    ],
)
async def test_a_compressed_body_the_server_sent_anyway_is_decoded(
    origin: Origin, encoding: str, pack: Any
) -> None:
    headers = {"Content-Encoding": encoding}
    url = origin.route("/c.jpg", lambda req: send_bytes(req, pack(IMAGE), headers=headers))
    async with make_fetcher(origin) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE


async def test_an_encoding_that_cannot_be_bounded_is_refused(origin: Origin) -> None:
    headers = {"Content-Encoding": "br"}
    url = origin.route("/c.jpg", lambda req: send_bytes(req, IMAGE, headers=headers))
    async with make_fetcher(origin) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.CONNECTION_ERROR
    assert "'br'" in error.message


def peak_rss_while(run: Any) -> tuple[Any, int]:
    """Run ``run()`` while a thread samples this process's RSS; (result, peak growth)."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run()
    finally:
        done.set()
        sampler.join()
    return result, peak - baseline


def test_gzip_bombs_stop_at_the_image_limit_with_memory_bounded(origin: Origin) -> None:
    # 200 MiB of zeros in about 200 KiB, eight downloads at once, a 4 MiB image limit:
    # inflating whole network reads would take 64 MiB per read, over 500 MiB in all.
    bomb = gzip.compress(b"\0" * (200 * MiB), compresslevel=9)
    assert len(bomb) < 256 * 1024
    headers = {"Content-Encoding": "gzip"}
    url = origin.route("/bomb.jpg", lambda req: send_bytes(req, bomb, headers=headers))
    limit = 4 * MiB

    async def eight() -> list[BaseException | Any]:
        async with make_fetcher(origin, max_image_bytes=limit) as fetcher:
            return await asyncio.gather(
                *(fetcher.fetch(f"{url}?n={n}") for n in range(8)), return_exceptions=True
            )

    results, growth = peak_rss_while(lambda: anyio.run(eight))
    assert all(isinstance(r, ImageError) and r.code is ErrorCode.TOO_LARGE for r in results)
    # Each download may hold up to the limit; the rest is slack for buffers and the loop.
    assert growth < 8 * limit + 32 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"
