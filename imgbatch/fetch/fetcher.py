"""Download one image safely: address policy, limits, retries and politeness.

One Fetcher per process holds one pooled client. A download first waits for a slot (its
host's, then the global one; redirects stay in the slot of the host asked for), and only
then does its clock (``fetch_timeout``) start, so
a long queue never turns into timeouts; the clock covers the whole attempt, redirects and
a server that stalls mid-body included. Each redirect hop is checked before it is
followed. Transient failures are retried with tenacity (exponential backoff with jitter,
or the server's Retry-After); the slot is given back while waiting.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from yarl import URL

from imgbatch.config import Settings
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.failures import (
    BadStatus,
    OutOfTime,
    TooLarge,
    TooManyRedirects,
    as_image_error,
    parse_retry_after,
)
from imgbatch.fetch.inflate import BoundedDecoder
from imgbatch.fetch.session import safe_session
from imgbatch.fetch.sharelinks import direct_download_url, web_page_error
from imgbatch.fetch.transport import Resolver, system_resolver
from imgbatch.fetch.unwritten import WRITTEN, Attempt, Unwritten

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The formats we decode first, then any image, then anything (a host that answers
# everything else with 406 still gets a chance to send its file).
ACCEPT = (
    "image/jpeg,image/png,image/webp,image/avif,image/gif,image/bmp,image/tiff,"
    "image/x-icon;q=0.9,image/*;q=0.8,*/*;q=0.5"
)


def request_headers(settings: Settings) -> dict[str, str]:
    return {
        "User-Agent": settings.user_agent,
        "Accept": ACCEPT,
        # Images gain nothing from compression, and a compressed body can hide its real
        # size (a server that compresses anyway is decoded within the limit: inflate.py).
        "Accept-Encoding": "identity",
    }


# What the re-run cache reads from a final response (RFC 9111).
CACHE_HEADERS = ("cache-control", "expires", "date", "age", "etag", "last-modified", "vary")

# Asked before a download starts: False stops it.
GoOn = Callable[[], Awaitable[bool]]


class Room(Protocol):
    """The caller's room for a body: taken once a 2xx answer's headers are in, before
    its body is read (the wait is not counted against the download's deadline); given
    back when that attempt fails. Both are idempotent; on success the caller keeps it."""

    async def take(self) -> None: ...

    def give_back(self) -> None: ...


class Stopped(Exception):
    """The work this download was for is no longer wanted; nothing was sent."""


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    content: bytes
    content_type: str | None  # as the server said; the real type is read from the bytes
    # The answer to a conditional GET was 304: ``content`` is empty, ours is current.
    not_modified: bool = False
    # The final response's caching headers (lowercase names), and when it was asked and
    # answered, for its age.
    headers: Mapping[str, str] = field(default_factory=dict)
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # A redirect was followed (a share link's rewrite to its direct download is not one).
    redirected: bool = False


def _paused(
    deadline: asyncio.Timeout, wait: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """``wait``, with ``deadline`` stopped while it waits."""

    async def paused() -> None:
        loop = asyncio.get_running_loop()
        when = deadline.when()
        left = None if when is None else when - loop.time()
        deadline.reschedule(None)
        try:
            await wait()
        finally:
            deadline.reschedule(None if left is None else loop.time() + left)

    return paused


class _HostSlots:
    """One semaphore per host, dropped again when no download to that host is waiting."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._slots[host] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[host]
            if users == 1:
                del self._slots[host]
            else:
                self._slots[host] = (semaphore, users - 1)


def _is_retryable(exc: BaseException) -> bool:
    error = as_image_error(exc)
    return error is not None and error.retryable


class Fetcher:
    """Downloads image URLs; ``fetch`` returns the bytes or raises ImageError."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: AddressPolicy | None = None,
        backoff_base: float = 0.5,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._policy = policy or AddressPolicy.from_settings(settings)
        self._timeout = settings.fetch_timeout
        self._max_bytes = settings.max_image_bytes
        self._headers = request_headers(settings)
        self._retries = settings.fetch_retries
        self._retry_after_cap = settings.fetch_retry_after_cap
        # The Retry-After cap bounds our own backoff too: no wait between attempts is longer.
        self._backoff = wait_exponential_jitter(
            initial=backoff_base,
            max=max(backoff_base, settings.fetch_retry_after_cap),
            jitter=backoff_base,
        )
        self._make_session = partial(
            safe_session,
            self._policy,
            max_connections=settings.fetch_concurrency,
            resolver=resolver,
            verify=verify,
        )
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it
        self._all_slots = asyncio.Semaphore(settings.fetch_concurrency)
        self._host_slots = _HostSlots(settings.fetch_per_host)
        self._unwritten = Unwritten()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def requests_written(self, timeout: float) -> bool:
        """True once every download told to go on whose connection is up has written its
        request (``unwritten``); False when that takes longer than ``timeout``."""
        return await self._unwritten.all_written(timeout)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._make_session()
        return self._session

    async def fetch(
        self,
        url: str,
        *,
        go_on: GoOn | None = None,
        conditions: Mapping[str, str] | None = None,
        room: Room | None = None,
    ) -> Fetched:
        """Download ``url`` (a share link: its direct download), retrying transient
        failures; raises ImageError.

        ``go_on`` is asked once a slot is free, before every attempt: when it says no
        (the request was cancelled), :class:`Stopped` is raised and nothing is sent.
        ``conditions`` (``If-None-Match``, ``If-Modified-Since``) make it a conditional
        GET: a 304 then returns ``Fetched(not_modified=True)`` instead of failing.
        ``room`` is taken before a body is read (see :class:`Room`).
        """
        target = direct_download_url(url)
        self._policy.check_url(target)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        try:
            fetched: Fetched = await retrying(self._attempt, target, go_on, conditions or {}, room)
        except Exception as exc:
            error = as_image_error(exc)
            if error is None:
                raise
            raise error from exc
        if (page := web_page_error(url, fetched.content_type)) is not None:
            raise page
        return replace(fetched, url=url)

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, BadStatus) and failure.retry_after is not None:
            return min(failure.retry_after, self._retry_after_cap)
        return float(self._backoff(state))

    async def _attempt(
        self,
        url: str,
        go_on: GoOn | None,
        conditions: Mapping[str, str],
        room: Room | None,
    ) -> Fetched:
        async with self._host_slots.hold(URL(url).raw_host or ""), self._all_slots:
            if go_on is not None and not await go_on():
                raise Stopped(url)
            try:
                async with asyncio.timeout(self._timeout) as deadline:
                    take = None if room is None else _paused(deadline, room.take)
                    with self._unwritten.one() as attempt:
                        return await self._follow(url, conditions, take, attempt)
            except BaseException as exc:
                if room is not None:
                    room.give_back()  # no room is held while waiting to be tried again
                if isinstance(exc, TimeoutError):
                    raise OutOfTime(self._timeout) from exc
                raise

    async def _follow(
        self,
        url: str,
        conditions: Mapping[str, str],
        before_body: Callable[[], Awaitable[None]] | None,
        attempt: Attempt,
    ) -> Fetched:
        current = url
        context = {WRITTEN: attempt}
        headers = {**self._headers, **conditions}
        for hop in range(MAX_REDIRECTS + 1):
            if hop:  # fetch() checked the first URL already
                self._policy.check_url(current)
            requested_at = datetime.now(UTC)
            answer = self.session.get(
                URL(current), headers=headers, allow_redirects=False, trace_request_ctx=context
            )
            async with answer as response:
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location:
                    current = str(response.url.join(URL(location)))
                    continue
                found = response.headers
                cache_headers = {name: found[name] for name in CACHE_HEADERS if name in found}
                if response.status == 304 and conditions:
                    await response.read()  # (empty) read to its end: the connection is reused
                    return Fetched(
                        url=url,
                        final_url=str(response.url),
                        content=b"",
                        content_type=None,
                        not_modified=True,
                        headers=cache_headers,
                        requested_at=requested_at,
                        redirected=hop > 0,
                    )
                if not 200 <= response.status < 300:
                    raise BadStatus(
                        response.status,
                        response.reason or "",
                        parse_retry_after(response.headers.get("Retry-After")),
                    )
                if before_body is not None:
                    await before_body()
                content = await self._read_capped(response)
                return Fetched(
                    url=url,
                    final_url=str(response.url),
                    content=content,
                    content_type=response.headers.get("Content-Type"),
                    headers=cache_headers,
                    requested_at=requested_at,
                    redirected=hop > 0,
                )
        raise TooManyRedirects(MAX_REDIRECTS)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise TooLarge(self._max_bytes, int(declared))
        # Raw bytes, decoded here within the limit (see inflate.py).
        decoder = BoundedDecoder(response.headers.get("Content-Encoding"), self._max_bytes)
        # Pieces joined once at the end: no growing buffer, no second copy.
        parts = [decoder.feed(chunk) async for chunk in response.content.iter_any()]
        parts.append(decoder.flush())
        return b"".join(parts)
