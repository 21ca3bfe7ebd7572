"""An httpx client whose every connection is checked against the address policy and pinned.

The webhook sender's client (one call per request); image downloads go through
``session.py``'s aiohttp session, which shares these exceptions and the resolver.

The check runs where the socket is opened, on the addresses the name resolved to: a URL's
text cannot be trusted (``http://2130706433/``, a name that resolves to 10.0.0.1) and a
name checked once may resolve elsewhere a moment later (DNS rebinding). So the network
backend resolves the name itself, refuses the host if ANY of its addresses is forbidden,
and connects to an address it checked. TLS still verifies, and sends SNI for, the host
name, because httpcore passes the URL's host to ``start_tls`` whatever the socket is
connected to; the Host header comes from the URL too.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio
import httpcore
import httpx

from imgbatch.fetch.addresses import AddressPolicy

# (host, port) -> the addresses the host resolves to, in the order to try them.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class AddressBlocked(Exception):
    """The host resolved to an address the policy forbids; nothing was sent."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to the forbidden address {address}")
        self.host = host
        self.address = address


def forbidden_address(
    policy: AddressPolicy, host: str, port: int, addresses: Sequence[str]
) -> str | None:
    """The first of ``addresses`` that ``host`` may not be reached at, or None."""
    return next((a for a in addresses if not policy.is_allowed(a, port, host)), None)


class NameNotResolved(Exception):
    """The host name has no address. ``temporary`` when the resolver said to try again."""

    def __init__(self, host: str, *, temporary: bool) -> None:
        super().__init__(f"{host} could not be resolved")
        self.host = host
        self.temporary = temporary


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), as the socket would use it."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameNotResolved(host, temporary=exc.errno == socket.EAI_AGAIN) from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address only."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if (forbidden := forbidden_address(self._policy, host, port, addresses)) is not None:
            raise AddressBlocked(host, forbidden)
        options = list(socket_options or ())
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout, local_address=local_address, socket_options=options
                )
                return stream
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the host's next address
        assert failure is not None
        raise failure

    async def _resolve(self, host: str, port: int, timeout: float | None) -> Sequence[str]:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from exc
        if not addresses:
            raise NameNotResolved(host, temporary=False)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressBlocked(path, "a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request conversion, error mapping) over the pinned backend."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits,
    ) -> None:
        # One SSL context for both pools: loading the CA bundle costs tens of milliseconds.
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx has no setting for the network backend, so the pool is built again with it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(policy, resolver),
        )


def safe_async_client(
    policy: AddressPolicy,
    *,
    timeout: float,
    max_connections: int = 100,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """An AsyncClient that connects only where ``policy`` allows, to the address it checked.

    Redirects are not followed (the caller checks each hop) and the environment is not
    trusted: no proxy variables, no netrc, no SSL_CERT_FILE.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = PinnedTransport(policy, resolver=resolver, verify=verify, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )
