"""The safe downloader against real servers on loopback: limits, retries, redirects, SSRF.

Servers the fetcher must never reach are "traps": each counts the requests it saw, and
every test that refuses an address also checks that its trap saw nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import gzip
import ssl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgbatch.config import Settings
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.fetcher import Fetcher
from imgbatch.fetch.transport import (
    AddressBlocked,
    NameNotResolved,
    Resolver,
    safe_async_client,
    system_resolver,
)
from tests.origin import (
    Origin,
    answer,
    endless,
    hang_up,
    in_turn,
    redirect,
    send_bytes,
    slow,
    stall,
    trickle,
)

pytestmark = pytest.mark.anyio

IMAGE = b"\xff\xd8\xff\xe0" + b"not really pixels" * 64
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_fetcher(
    *allowed: str,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
    **settings: Any,
) -> Fetcher:
    values: dict[str, Any] = {"fetch_timeout": 5.0, "fetch_retries": 3, **settings}
    return Fetcher(
        Settings(**values),
        policy=AddressPolicy(allowed),
        backoff_base=0.01,
        resolver=resolver,
        verify=verify,
    )


def allow(origin: Origin) -> str:
    return f"127.0.0.1:{origin.port}"


async def failure(fetcher: Fetcher, url: str) -> ImageError:
    with pytest.raises(ImageError) as caught:
        await fetcher.fetch(url)
    return caught.value


def twins(first: str, second: str) -> tuple[Origin, Origin]:
    """Two origins on the same port of two loopback addresses."""
    for _ in range(50):
        one = Origin(first)
        try:
            other = Origin(second, port=one.port)
        except OSError:
            one.server.server_close()
            continue
        return one.start(), other.start()
    raise RuntimeError(f"no port free on both {first} and {second}")


class Traps:
    """Listeners on 127.0.0.1 and ::1, one port: where every loopback spelling lands."""

    def __init__(self) -> None:
        self.v4, self.v6 = twins("127.0.0.1", "::1")
        self.port = self.v4.port

    @property
    def hits(self) -> int:
        return sum(self.v4.hits.values()) + sum(self.v6.hits.values())

    def stop(self) -> None:
        self.v4.stop()
        self.v6.stop()


@pytest.fixture
def traps() -> Iterator[Traps]:
    pair = Traps()
    yield pair
    pair.stop()


@pytest.fixture
def trap() -> Iterator[Origin]:
    server = Origin().start()
    yield server
    server.stop()


def static_resolver(table: dict[str, Sequence[str]], calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        return table.get(host, [host])  # an address literal resolves to itself

    return resolve


# --- success -----------------------------------------------------------------------------


async def test_fetches_the_bytes_and_reports_the_servers_content_type(origin: Origin) -> None:
    url = origin.serve_bytes("/a.jpg", IMAGE, content_type="image/jpeg")
    async with make_fetcher(allow(origin)) as fetcher:
        fetched = await fetcher.fetch(url)
    assert fetched.content == IMAGE
    assert fetched.content_type == "image/jpeg"
    assert fetched.url == fetched.final_url == url
    sent = origin.last_headers["/a.jpg"]
    assert sent["Accept-Encoding"] == "identity"
    assert sent["User-Agent"].startswith("imgbatch/")


async def test_fetches_the_photo_corpus(photo_origin: Origin, photos: list[Path]) -> None:
    async with make_fetcher(allow(photo_origin)) as fetcher:
        results = await asyncio.gather(
            *(fetcher.fetch(photo_origin.url(f"/photos/{photo.name}")) for photo in photos)
        )
    assert [result.content for result in results] == [photo.read_bytes() for photo in photos]


# --- status codes and retries ------------------------------------------------------------


@pytest.mark.parametrize(("status", "phrase"), [(404, "Not Found"), (403, "Forbidden")])
async def test_client_errors_fail_at_once(origin: Origin, status: int, phrase: str) -> None:
    url = origin.route("/gone", answer(status))
    async with make_fetcher(allow(origin), fetch_retries=3) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.HTTP_ERROR
    assert error.message == f"the server answered {status} {phrase}"
    assert not error.retryable
    assert origin.hits["/gone"] == 1


async def test_a_server_error_is_retried_and_can_succeed(origin: Origin) -> None:
    url = origin.route("/flaky", in_turn(answer(500), lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin)) as fetcher:
        fetched = await fetcher.fetch(url)
    assert fetched.content == IMAGE
    assert origin.hits["/flaky"] == 2


async def test_too_many_requests_is_retried(origin: Origin) -> None:
    url = origin.route("/busy", in_turn(answer(429), lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin)) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert origin.hits["/busy"] == 2


async def test_retries_stop_after_the_budget(origin: Origin) -> None:
    url = origin.route("/down", answer(503))
    async with make_fetcher(allow(origin), fetch_retries=2) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.HTTP_ERROR
    assert error.message == "the server answered 503 Service Unavailable"
    assert error.retryable
    assert origin.hits["/down"] == 3


async def test_a_dropped_connection_is_retried(origin: Origin) -> None:
    url = origin.route("/drop", in_turn(hang_up, lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin)) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert origin.hits["/drop"] == 2


async def test_a_dropped_connection_without_retries_is_a_connection_error(origin: Origin) -> None:
    url = origin.route("/drop", hang_up)
    async with make_fetcher(allow(origin), fetch_retries=0) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.CONNECTION_ERROR
    assert error.retryable


async def test_retry_after_in_seconds_is_honoured(origin: Origin) -> None:
    wait = answer(503, headers={"Retry-After": "1"})
    url = origin.route("/later", in_turn(wait, lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin)) as fetcher:
        started = time.monotonic()
        assert (await fetcher.fetch(url)).content == IMAGE
    assert time.monotonic() - started >= 0.95  # the backoff alone is ~0.01 s
    assert origin.hits["/later"] == 2


async def test_retry_after_as_an_http_date_is_honoured(origin: Origin) -> None:
    def wait(req: Any) -> None:
        when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds
        send_bytes(req, b"", status=429, headers={"Retry-After": when})

    url = origin.route("/later", in_turn(wait, lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin)) as fetcher:
        started = time.monotonic()
        assert (await fetcher.fetch(url)).content == IMAGE
    assert 0.9 <= time.monotonic() - started < 3


async def test_a_long_retry_after_is_cut_to_the_cap(origin: Origin) -> None:
    wait = answer(503, headers={"Retry-After": "3600"})
    url = origin.route("/later", in_turn(wait, lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin), fetch_retry_after_cap=0.2) as fetcher:
        started = time.monotonic()
        assert (await fetcher.fetch(url)).content == IMAGE
    assert 0.2 <= time.monotonic() - started < 2


# --- time and size limits ----------------------------------------------------------------


async def test_a_server_that_stalls_mid_body_times_out(origin: Origin) -> None:
    url = origin.route("/stall", stall(origin, IMAGE[:100], declared=len(IMAGE)))
    async with make_fetcher(allow(origin), fetch_timeout=0.5, fetch_retries=0) as fetcher:
        started = time.monotonic()
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TIMEOUT
    assert error.retryable
    assert time.monotonic() - started < 1.5


async def test_a_body_that_trickles_in_is_cut_off_by_the_overall_deadline(origin: Origin) -> None:
    # A byte every 50 ms never trips a per-read timeout; only the whole-download one.
    url = origin.route("/slowloris", trickle(origin, IMAGE[:200], every=0.05))
    async with make_fetcher(allow(origin), fetch_timeout=0.6, fetch_retries=0) as fetcher:
        started = time.monotonic()
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TIMEOUT
    assert time.monotonic() - started < 1.5


async def test_a_timeout_is_retried(origin: Origin) -> None:
    first = stall(origin, IMAGE[:10], declared=len(IMAGE))
    url = origin.route("/once", in_turn(first, lambda req: send_bytes(req, IMAGE)))
    async with make_fetcher(allow(origin), fetch_timeout=0.4, fetch_retries=1) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert origin.hits["/once"] == 2


async def test_an_endless_body_is_cut_at_the_size_limit(origin: Origin) -> None:
    url = origin.route("/endless", endless(origin))
    limits: dict[str, Any] = {"max_image_bytes": 256 * 1024, "fetch_timeout": 10.0}
    async with make_fetcher(allow(origin), **limits) as fetcher:
        started = time.monotonic()
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TOO_LARGE
    assert not error.retryable
    assert time.monotonic() - started < 2
    assert origin.hits["/endless"] == 1


async def test_an_announced_size_over_the_limit_is_refused_before_the_body(
    origin: Origin,
) -> None:
    # Announces 10 MiB, then sends nothing: only the Content-Length can end this early.
    url = origin.route("/huge", stall(origin, b"", declared=10 * MiB))
    async with make_fetcher(allow(origin), max_image_bytes=MiB, fetch_timeout=5.0) as fetcher:
        started = time.monotonic()
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TOO_LARGE
    assert "10485760" in error.message
    assert time.monotonic() - started < 1
    assert origin.hits["/huge"] == 1


async def test_a_small_content_length_does_not_let_a_large_body_through(origin: Origin) -> None:
    # 4 MiB of image behind a Content-Length of a few KiB (a gzip body the client unpacks).
    packed = gzip.compress(b"\0" * (4 * MiB))
    assert len(packed) < 16 * 1024
    headers = {"Content-Encoding": "gzip"}
    url = origin.route("/bomb", lambda req: send_bytes(req, packed, headers=headers))
    async with make_fetcher(allow(origin), max_image_bytes=MiB) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("size", [1000, 1001])
async def test_the_size_limit_counts_the_bytes_received(origin: Origin, size: int) -> None:
    # No Content-Length: the body ends when the connection closes.
    url = origin.route("/body", endless(origin, chunk=b"x" * size, limit=size))
    async with make_fetcher(allow(origin), max_image_bytes=1000) as fetcher:
        if size <= 1000:
            assert len((await fetcher.fetch(url)).content) == size
        else:
            assert (await failure(fetcher, url)).code is ErrorCode.TOO_LARGE


# --- redirects -----------------------------------------------------------------------------


def redirect_chain(origin: Origin, name: str, hops: int) -> str:
    for hop in range(hops):
        # relative and absolute Locations alike
        target = f"/{name}{hop + 1}" if hop % 2 else origin.url(f"/{name}{hop + 1}")
        origin.route(f"/{name}{hop}", redirect(target, status=(301, 302, 303, 307, 308)[hop % 5]))
    origin.serve_bytes(f"/{name}{hops}", IMAGE)
    return origin.url(f"/{name}0")


async def test_five_redirects_are_followed(origin: Origin) -> None:
    url = redirect_chain(origin, "r", 5)
    async with make_fetcher(allow(origin)) as fetcher:
        fetched = await fetcher.fetch(url)
    assert fetched.content == IMAGE
    assert fetched.url == url
    assert fetched.final_url == origin.url("/r5")


async def test_six_redirects_are_too_many(origin: Origin) -> None:
    url = redirect_chain(origin, "r", 6)
    async with make_fetcher(allow(origin)) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.TOO_MANY_REDIRECTS
    assert origin.hits["/r5"] == 1
    assert "/r6" not in origin.hits
    assert origin.hits["/r0"] == 1  # not retried


async def test_a_redirect_to_a_forbidden_port_never_arrives(origin: Origin, trap: Origin) -> None:
    url = origin.route("/go", redirect(trap.url("/secret")))
    async with make_fetcher(allow(origin)) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.BLOCKED_ADDRESS
    assert trap.hits == {}


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1]:{port}/secret",
        "http://localhost:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://0.0.0.0:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
    ],
)
async def test_redirects_to_loopback_spellings_never_arrive(
    origin: Origin, traps: Traps, location: str
) -> None:
    url = origin.route("/go", redirect(location.format(port=traps.port)))
    async with make_fetcher(allow(origin)) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.BLOCKED_ADDRESS
    assert traps.hits == 0


async def test_a_redirect_to_another_scheme_is_an_invalid_url(origin: Origin) -> None:
    url = origin.route("/go", redirect("file:///etc/passwd"))
    async with make_fetcher(allow(origin)) as fetcher:
        assert (await failure(fetcher, url)).code is ErrorCode.INVALID_URL


# --- addresses -----------------------------------------------------------------------------


async def test_the_default_policy_refuses_the_local_origin(origin: Origin) -> None:
    url = origin.serve_bytes("/a.jpg", IMAGE)
    async with Fetcher(Settings(fetch_retries=3), backoff_base=0.01) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.BLOCKED_ADDRESS
    assert not error.retryable
    assert origin.hits == {}


LOOPBACK_URLS = [
    "http://127.0.0.1:{port}/x",
    "http://localhost:{port}/x",
    "http://LocalHost.:{port}/x",
    "http://0.0.0.0:{port}/x",
    "http://0:{port}/x",
    "http://[::]:{port}/x",
    "http://[::1]:{port}/x",
    "http://[::ffff:127.0.0.1]:{port}/x",
    "http://[::ffff:7f00:1]:{port}/x",
    "http://2130706433:{port}/x",
    "http://0x7f000001:{port}/x",
    "http://0177.0.0.1:{port}/x",
    "http://127.1:{port}/x",
    "http://127.0.0.1.:{port}/x",
    "http://127.0.0.2:{port}/x",
]


@pytest.mark.parametrize("template", LOOPBACK_URLS)
async def test_every_spelling_of_this_machine_is_blocked(traps: Traps, template: str) -> None:
    async with make_fetcher() as fetcher:
        error = await failure(fetcher, template.format(port=traps.port))
    assert error.code is ErrorCode.BLOCKED_ADDRESS
    assert traps.hits == 0


@pytest.mark.parametrize(
    "template",
    [url for url in LOOPBACK_URLS if "0177" not in url],  # httpx itself refuses that one
)
async def test_the_connection_refuses_them_without_the_url_check(
    traps: Traps, template: str
) -> None:
    # safe_async_client alone, as the webhook sender uses it: no URL check before it.
    # (The resolver finds no address for the spellings with a trailing dot.)
    async with safe_async_client(AddressPolicy(), timeout=5) as client:
        with pytest.raises((AddressBlocked, NameNotResolved)):
            await client.get(template.format(port=traps.port))
    assert traps.hits == 0


async def test_the_userinfo_does_not_choose_the_host(origin: Origin, trap: Origin) -> None:
    url = f"http://127.0.0.1:{origin.port}@127.0.0.1:{trap.port}/x"
    async with make_fetcher(allow(origin)) as fetcher:
        error = await failure(fetcher, url)
    assert error.code is ErrorCode.BLOCKED_ADDRESS
    assert trap.hits == {}


async def test_proxy_variables_are_ignored(
    origin: Origin, trap: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, trap.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = origin.serve_bytes("/a.jpg", IMAGE)
    # The trap is allowed too, so a proxied request would arrive there.
    async with make_fetcher(allow(origin), allow(trap)) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert trap.hits == {}
    assert origin.hits["/a.jpg"] == 1


# --- resolution ------------------------------------------------------------------------------


async def test_the_checked_address_is_connected_and_the_name_kept(origin: Origin) -> None:
    calls: list[str] = []
    resolver = static_resolver({"images.test": ["127.0.0.1"]}, calls)
    origin.serve_bytes("/a.jpg", IMAGE)
    url = f"http://images.test:{origin.port}/a.jpg"
    async with make_fetcher(allow(origin), resolver=resolver) as fetcher:
        assert (await fetcher.fetch(url)).content == IMAGE
    assert calls == ["images.test"]
    assert origin.last_headers["/a.jpg"]["Host"] == f"images.test:{origin.port}"


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1", "127.0.0.2"], ["127.0.0.2", "127.0.0.1"]], ids=["last", "first"]
)
async def test_a_host_with_any_forbidden_address_is_refused(addresses: list[str]) -> None:
    good, bad = twins("127.0.0.1", "127.0.0.2")
    try:
        good.serve_bytes("/a.jpg", IMAGE)
        resolver = static_resolver({"mixed.test": addresses})
        async with make_fetcher("127.0.0.1/32", resolver=resolver) as fetcher:
            error = await failure(fetcher, f"http://mixed.test:{good.port}/a.jpg")
        assert error.code is ErrorCode.BLOCKED_ADDRESS
        assert "127.0.0.2" in error.message
        assert good.hits == {}
        assert bad.hits == {}
    finally:
        good.stop()
        bad.stop()


async def test_a_name_rebound_to_a_forbidden_address_is_refused_on_the_next_connection() -> None:
    good, bad = twins("127.0.0.1", "127.0.0.2")
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return next(answers)

    try:
        # Connection: close, so the second fetch needs a new connection.
        good.route("/a.jpg", lambda req: send_bytes(req, IMAGE, headers={"Connection": "close"}))
        url = f"http://rebind.test:{good.port}/a.jpg"
        async with make_fetcher("127.0.0.1/32", resolver=rebinding) as fetcher:
            assert (await fetcher.fetch(url)).content == IMAGE
            error = await failure(fetcher, url)
        assert error.code is ErrorCode.BLOCKED_ADDRESS
        assert good.hits == {"/a.jpg": 1}
        assert bad.hits == {}
    finally:
        good.stop()
        bad.stop()


@pytest.mark.parametrize(("temporary", "attempts"), [(False, 1), (True, 3)])
async def test_a_name_that_does_not_resolve_is_a_dns_error(temporary: bool, attempts: int) -> None:
    calls: list[str] = []

    async def failing(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        raise NameNotResolved(host, temporary=temporary)

    async with make_fetcher(resolver=failing, fetch_retries=2) as fetcher:
        error = await failure(fetcher, "http://nowhere.test/a.jpg")
    assert error.code is ErrorCode.DNS_ERROR
    assert error.retryable is temporary
    assert len(calls) == attempts


async def test_the_system_resolver_reads_numeric_spellings_as_addresses() -> None:
    # Why the check runs after resolution: the OS takes these as 127.0.0.1.
    assert "127.0.0.1" in await system_resolver("localhost", 80)
    assert await system_resolver("2130706433", 80) == ["127.0.0.1"]
    assert await system_resolver("0x7f.1", 80) == ["127.0.0.1"]


# --- TLS -------------------------------------------------------------------------------------


def tls_contexts(hostname: str, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``hostname``: (server context, client context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


async def test_https_to_a_pinned_address_still_verifies_the_host_name(tmp_path: Path) -> None:
    server_tls, client_tls = tls_contexts("images.test", tmp_path)
    secure = Origin(tls=server_tls).start()
    try:
        secure.serve_bytes("/a.jpg", IMAGE)
        resolver = static_resolver({"images.test": ["127.0.0.1"]})
        async with make_fetcher(
            allow(secure), resolver=resolver, verify=client_tls, fetch_retries=0
        ) as fetcher:
            fetched = await fetcher.fetch(f"https://images.test:{secure.port}/a.jpg")
            assert fetched.content == IMAGE
            # The same server by address: the certificate does not name it, so no.
            error = await failure(fetcher, f"https://127.0.0.1:{secure.port}/a.jpg")
        assert error.code is ErrorCode.CONNECTION_ERROR
        assert secure.hits == {"/a.jpg": 1}
        assert secure.last_headers["/a.jpg"]["Host"] == f"images.test:{secure.port}"
    finally:
        secure.stop()


# --- politeness ------------------------------------------------------------------------------


async def test_the_per_host_limit_is_what_the_origin_sees(origin: Origin) -> None:
    url = origin.route("/slow", slow(IMAGE, 0.25))
    async with make_fetcher(allow(origin), fetch_per_host=2, fetch_concurrency=10) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(url) for _ in range(6)))
    assert all(result.content == IMAGE for result in results)
    assert origin.max_in_flight == 2


async def test_the_global_limit_holds_and_waiting_for_it_is_not_timed(origin: Origin) -> None:
    # 8 downloads of 0.4 s, 2 at a time, each allowed 1 s: the queue takes 1.6 s.
    url = origin.route("/slow", slow(IMAGE, 0.4))
    limits: dict[str, Any] = {"fetch_per_host": 8, "fetch_concurrency": 2, "fetch_timeout": 1.0}
    async with make_fetcher(allow(origin), fetch_retries=0, **limits) as fetcher:
        started = time.monotonic()
        results = await asyncio.gather(*(fetcher.fetch(url) for _ in range(8)))
    assert all(result.content == IMAGE for result in results)
    assert origin.max_in_flight == 2
    assert time.monotonic() - started >= 1.5


# --- the shared client -----------------------------------------------------------------------


async def test_the_safe_client_posts_and_does_not_follow_redirects(origin: Origin) -> None:
    def hook(req: Any) -> None:
        req.rfile.read(int(req.headers["Content-Length"]))
        send_bytes(req, b"", status=204)

    origin.route("/hook", hook)
    origin.route("/moved", redirect("http://169.254.169.254/latest/meta-data"))
    policy = AddressPolicy([allow(origin)])
    async with safe_async_client(policy, timeout=5) as client:
        assert (await client.post(origin.url("/hook"), json={"a": 1})).status_code == 204
        assert (await client.post(origin.url("/moved"))).status_code == 302
    assert origin.hits == {"/hook": 1, "/moved": 1}


async def test_the_safe_client_refuses_what_the_policy_refuses(trap: Origin) -> None:
    async with safe_async_client(AddressPolicy(), timeout=5) as client:
        with pytest.raises(AddressBlocked):
            await client.post(trap.url("/hook"))
        assert isinstance(client, httpx.AsyncClient)
    assert trap.hits == {}
