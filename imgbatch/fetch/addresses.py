"""Which network addresses the service may fetch from.

Only public addresses are fetched. The forbidden networks are listed explicitly (from the
IANA IPv4 and IPv6 special-purpose registries) rather than taken from ``ipaddress``'s
``is_private``/``is_global``: those were wrong for several ranges before CVE-2024-4032 was
fixed, and Python 3.11.7 predates the fix. IPv6 forms that carry an IPv4 address
(IPv4-mapped, NAT64, 6to4) are judged by the IPv4 address they reach.

``IMGBATCH_ALLOW_PRIVATE_NETWORKS`` entries (CIDRs, or ``host:port``) are the only
exceptions, for intranet origins and tests.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from imgbatch.errors import ErrorCode, ImageError

if TYPE_CHECKING:
    from imgbatch.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# IANA IPv4 Special-Purpose Address Registry, the entries not globally reachable, plus
# multicast and the old class E space.
FORBIDDEN_IPV4 = _networks(
    "0.0.0.0/8",  # "this network", 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services live here
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
)

# IANA IPv6 Special-Purpose Address Registry, the entries not globally reachable.
FORBIDDEN_IPV6 = _networks(
    "::/96",  # unspecified ::, loopback ::1, deprecated IPv4-compatible ::a.b.c.d
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard-only
    "100:0:0:1::/64",  # dummy prefix
    "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "5f00::/16",  # segment routing SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # deprecated site-local
    "ff00::/8",  # multicast
)

# Everything outside global unicast is reserved by the IPv6 address architecture.
GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")

IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def parse_ip(text: str) -> IPAddress | None:
    """An address in canonical notation (as getaddrinfo gives it), or None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches, for the forms that carry one."""
    value = int(address)
    if address in IPV4_MAPPED or address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    if address in SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFF_FFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True when the address is a public unicast address (or reaches only one)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        if address not in GLOBAL_UNICAST_IPV6:
            return False
        return not any(address in network for network in FORBIDDEN_IPV6)
    return not any(address in network for network in FORBIDDEN_IPV4)


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` is the IPv4 socket a.b.c.d; compare allow-list entries with that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """Read the numeric IPv4 spellings that resolvers accept (inet_aton, WHATWG URL).

    ``127.1``, ``2130706433``, ``0x7f000001`` and ``0177.0.0.1`` all mean 127.0.0.1; this
    returns None for anything that is not such a number.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a trailing dot is allowed
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _ipv4_part(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_part(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


_HOST_NAME = re.compile(r"[a-z0-9_.-]+")  # after httpx's IDNA encoding and lower-casing


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


@dataclass(frozen=True)
class _HostPort:
    host: str  # a normalised name, or an address in canonical notation
    port: int


def _parse_allowed(entry: str) -> IPNetwork | _HostPort:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    host, sep, port_text = entry.rpartition(":")
    if sep and host and port_text.isdigit() and 0 < int(port_text) < 65536:
        address = parse_ip(host.strip("[]"))
        name = str(_unmapped(address)) if address is not None else _normal_host(host)
        return _HostPort(name, int(port_text))
    raise ValueError(
        f"allowed private network {entry!r} is neither a CIDR (10.0.0.0/8) "
        "nor host:port (intranet.local:8080)"
    )


class AddressPolicy:
    """Decides whether a connection to an address (and port, for a host) may be made."""

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        parsed = [_parse_allowed(entry.strip()) for entry in allowed if entry.strip()]
        self._networks = tuple(item for item in parsed if not isinstance(item, _HostPort))
        self._host_ports = frozenset(item for item in parsed if isinstance(item, _HostPort))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.allowed_private_networks)

    def is_allowed(self, ip: str, port: int, host: str | None = None) -> bool:
        """May the service connect to ``ip:port``, reached by the name ``host``?"""
        address = parse_ip(ip)
        if address is None:
            return False
        if is_public(address) or self._is_excepted(_unmapped(address), port):
            return True
        return host is not None and _HostPort(_normal_host(host), port) in self._host_ports

    def _is_excepted(self, address: IPAddress, port: int) -> bool:
        if _HostPort(str(address), port) in self._host_ports:
            return True
        return any(address in network for network in self._networks)

    def check_url(self, url: str) -> None:
        """Refuse a URL that is not http(s) with a host, or whose host is a forbidden literal.

        A quick check without DNS: names are judged when the connection opens.
        """
        try:
            parsed = httpx.URL(url)
            host = parsed.raw_host.decode("ascii")  # IDNA-encoded: never decode it back
        except (httpx.InvalidURL, ValueError, TypeError) as exc:  # IDNA errors are ValueErrors
            # httpx refuses some numeric spellings (0177.0.0.1) that resolvers accept.
            self._refuse_literal(_lenient_host(url), None)
            raise invalid_url(url) from exc
        if parsed.scheme not in ("http", "https") or not host:
            raise invalid_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._refuse_literal(host, port)
        if parse_ip(host) is None and not _HOST_NAME.fullmatch(host):
            raise invalid_url(url)  # httpx percent-encodes what a host name cannot hold

    def _refuse_literal(self, host: str | None, port: int | None) -> None:
        if not host:
            return
        name = _normal_host(host)
        if _is_localhost_name(name):
            # The resolver decides later which loopback address; either must be allowed.
            loopbacks = ("127.0.0.1", "::1")
            if port is None or not any(self.is_allowed(ip, port, name) for ip in loopbacks):
                raise blocked_address(host, "loopback")
            return
        literal = parse_ip(name) or parse_ipv4_number(name)
        if literal is None:
            return
        # Without a port (an unparsable URL) only a public address passes.
        allowed = is_public(literal) if port is None else self.is_allowed(str(literal), port)
        if not allowed:
            raise blocked_address(host, str(literal))


def _lenient_host(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url.strip()).hostname
    except ValueError:
        return None


def invalid_url(url: str) -> ImageError:
    shown = url if len(url) <= 200 else url[:200] + "…"
    return ImageError(ErrorCode.INVALID_URL, f"not a valid http or https URL: {shown!r}")


def blocked_address(host: str, address: str) -> ImageError:
    where = address if _normal_host(host) == address else f"{host} ({address})"
    return ImageError(
        ErrorCode.BLOCKED_ADDRESS,
        f"refused to fetch from {where}: not a public internet address",
    )
