"""The image downloads' aiohttp session: every socket it opens is checked against the policy.

Why aiohttp and not httpx here: a download is the one network call made per image, and
httpx's stack (httpx, httpcore, h11, AnyIO) cost 1.5–2 ms of CPU per 427 kB photo, where
aiohttp's C parser takes 0.4 ms (``bench/README.md``). The webhook sender keeps httpx
(``transport.py``): one call per request, not per image.

Two checks, both where the connection is made rather than on the URL's text:

* a name is resolved here (``PinnedResolver``), and refused if ANY of its addresses is
  forbidden; aiohttp then connects to the addresses it was given, so a name that
  resolves elsewhere a moment later (DNS rebinding) cannot move the connection. Names
  are resolved for every new connection (no DNS cache), as the check needs;
* every socket is checked again as it is made (``socket_factory``): aiohttp does not ask
  the resolver about an address literal, so this is where a literal is judged. A name's
  address passes here when the policy allows the name (a ``host:port`` entry) and the
  resolver saw it resolve to that address.

TLS verifies, and sends SNI for, the URL's host name whatever address is connected.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.transport import AddressBlocked, NameNotResolved, Resolver, forbidden_address
from imgbatch.fetch.unwritten import written_trace

# How long an idle pooled connection is kept. Idle connections do not count against the
# connection limit, so with thousands of hosts this is what bounds the open sockets.
KEEPALIVE_SECONDS = 5.0


class PinnedResolver(AbstractResolver):
    """Resolves with ``resolver`` and refuses a host with any forbidden address."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        # Addresses allowed only through a name (a ``host:port`` policy entry): the
        # socket check lets them through. As many as such entries resolve to.
        self.allowed_by_name: set[tuple[str, int]] = set()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolver(host, port)
        if not addresses:
            raise NameNotResolved(host, temporary=False)
        if (address := forbidden_address(self._policy, host, port, addresses)) is not None:
            raise AddressBlocked(host, address)
        results: list[ResolveResult] = []
        for address in addresses:
            if not self._policy.is_allowed(address, port):
                self.allowed_by_name.add((address, port))
            version = ipaddress.ip_address(address).version
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": socket.AF_INET6 if version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        pass


def _socket_factory(policy: AddressPolicy, resolver: PinnedResolver) -> Any:
    def make_socket(addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        address, port = str(sockaddr[0]), int(sockaddr[1])
        if not policy.is_allowed(address, port) and (address, port) not in resolver.allowed_by_name:
            raise AddressBlocked(address, address)
        return socket.socket(family=family, type=kind, proto=proto)

    return make_socket


def safe_session(
    policy: AddressPolicy,
    *,
    max_connections: int,
    resolver: Resolver,
    verify: ssl.SSLContext | bool = True,
) -> aiohttp.ClientSession:
    """A session that connects only where ``policy`` allows, to the address it checked.

    Bodies come raw (the fetcher inflates them within its size limit), redirects are the
    caller's to follow, and the environment is not trusted: no proxy variables, no netrc.
    Timeouts are the caller's too: its deadline covers a whole attempt.
    """
    pinned = PinnedResolver(policy, resolver)
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        resolver=pinned,
        use_dns_cache=False,
        ssl=verify,
        keepalive_timeout=KEEPALIVE_SECONDS,
        socket_factory=_socket_factory(policy, pinned),
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("Accept-Encoding",),
        trace_configs=[written_trace()],
    )
