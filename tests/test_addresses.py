"""The address policy: which addresses, spellings and allow-list entries pass."""

from __future__ import annotations

import pytest

from imgbatch.config import Settings
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.fetch.addresses import AddressPolicy, parse_ipv4_number

DEFAULT = AddressPolicy()

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",  # just below 10/8
    "11.0.0.0",  # just above 10/8
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above 100.64/10
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",  # between 192.0.0/24 and 192.0.2/24
    "192.0.3.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",  # last unicast before multicast
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2000::1",  # first of global unicast
    "2001:200::1",  # just above 2001::/23
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "3ffe::1",
    "3fff:1000::",  # just above 3fff::/20
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]

FORBIDDEN = [
    # IPv4 special-purpose ranges, at both ends
    "0.0.0.0",
    "0.255.255.255",
    "10.0.0.0",
    "10.255.255.255",
    "100.64.0.0",
    "100.127.255.255",
    "127.0.0.1",
    "127.0.0.0",
    "127.255.255.255",
    "169.254.0.0",
    "169.254.169.254",  # cloud metadata
    "169.254.255.255",
    "172.16.0.0",
    "172.31.255.255",
    "192.0.0.0",
    "192.0.0.255",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.0",
    "192.168.255.255",
    "198.18.0.0",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.7",
    "224.0.0.0",
    "239.255.255.255",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6
    "::",
    "::1",
    "::2",
    "fe80::1",
    "fe80::1%2",  # with a zone, as getaddrinfo may give it
    "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fec0::1",
    "fc00::1",
    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "ff02::1",
    "ff0e::1",
    "100::1",
    "100:0:0:1::1",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",  # end of 2001::/23
    "2001:2::1",  # benchmarking
    "2001:db8::1",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff::1",
    "3fff:fff:ffff::",
    "5f00::1",
    "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # just below 2000::/3: reserved
    "4000::1",  # reserved
    "64:ff9b:1::1",  # local-use NAT64
    # IPv6 forms that embed a forbidden IPv4 address
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible is deprecated, whatever it embeds
    "::ffff:0:127.0.0.1",  # IPv4-translated
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2002::",  # 6to4 of 0.0.0.0
    # not addresses at all
    "",
    "localhost",
    "not-an-ip",
]


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip: str) -> None:
    assert DEFAULT.is_allowed(ip, 443)


@pytest.mark.parametrize("ip", FORBIDDEN)
def test_special_purpose_addresses_are_refused(ip: str) -> None:
    assert not DEFAULT.is_allowed(ip, 443)


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "0x7f.0.0.1",
    "0x7f.1",
    "127.1",
    "127.0.1",
    "127.0.0.1.",
    "017700000001",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_every_numeric_spelling_of_loopback_is_read(spelling: str) -> None:
    assert str(parse_ipv4_number(spelling)) == "127.0.0.1"


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "256.0.0.1", "1.16777216", "08.0.0.1", "1e3", "", "."]
)
def test_names_and_impossible_numbers_are_not_numeric_addresses(host: str) -> None:
    assert parse_ipv4_number(host) is None


def test_zero_in_any_spelling_is_the_unspecified_address() -> None:
    assert {str(parse_ipv4_number(host)) for host in ("0", "0x", "00", "0.0", "0x0.0")} == {
        "0.0.0.0"
    }


BLOCKED_URLS = [
    *(f"http://{spelling}/a.jpg" for spelling in LOOPBACK_SPELLINGS),
    "http://localhost/a.jpg",
    "http://LOCALHOST./a.jpg",
    "http://images.localhost:8080/a.jpg",
    "http://0.0.0.0/a.jpg",
    "http://0/a.jpg",
    "http://[::]/a.jpg",
    "http://[::1]/a.jpg",
    "http://[0:0:0:0:0:0:0:1]/a.jpg",
    "http://[::ffff:127.0.0.1]/a.jpg",
    "http://[::ffff:7f00:1]/a.jpg",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data",
    "http://[64:ff9b::127.0.0.1]/a.jpg",
    "http://[2002:7f00:1::]/a.jpg",
    "http://[fe80::1%25eth0]/a.jpg",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/a.jpg",
    "https://192.168.1.1:8443/a.jpg",
    "http://good.example@127.0.0.1/a.jpg",  # judged by the real host
    "http://127.0.0.1:80@127.0.0.1/a.jpg",
    "http://127。0。0。1/a.jpg",  # ideographic full stops
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/a.jpg",  # full-width digits
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_literal_forbidden_hosts_are_blocked_in_any_spelling(url: str) -> None:
    with pytest.raises(ImageError) as caught:
        DEFAULT.check_url(url)
    assert caught.value.code is ErrorCode.BLOCKED_ADDRESS
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "ftp://images.example/a.jpg",
        "file:///etc/passwd",
        "gopher://images.example/",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "http:///a.jpg",
        "http:a.jpg",
        "//images.example/a.jpg",
        "images.example/a.jpg",
        "",
        "http://exa mple.com/",
        "http://exa%41mple.com/",
        "http://[::1/",
        "http://ⓛocalhost/",
    ],
)
def test_anything_but_http_with_a_host_is_invalid(url: str) -> None:
    with pytest.raises(ImageError) as caught:
        DEFAULT.check_url(url)
    assert caught.value.code is ErrorCode.INVALID_URL


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example/a.jpg",
        "https://cdn.images.example:8443/a.jpg?x=1",
        "http://127.0.0.1.nip.io/a.jpg",  # a name: judged after DNS, at connect time
        "http://8.8.8.8/a.jpg",
        "http://[2606:4700:4700::1111]/a.jpg",
        "http://127.0.0.1@images.example/a.jpg",  # userinfo is not the host
        "http://bücher.example/a.jpg",  # IDNA
        "http://under_score.example/a.jpg",
    ],
)
def test_public_literals_and_names_pass_the_quick_check(url: str) -> None:
    DEFAULT.check_url(url)


def test_cidr_entries_allow_their_network_on_any_port() -> None:
    policy = AddressPolicy(["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"])
    assert policy.is_allowed("127.0.0.1", 80)
    assert policy.is_allowed("127.9.9.9", 65535)
    assert policy.is_allowed("::ffff:127.0.0.1", 80)  # the same socket as 127.0.0.1
    assert policy.is_allowed("10.1.255.255", 8080)
    assert policy.is_allowed("fd12::1", 80)
    assert not policy.is_allowed("10.2.0.0", 8080)
    assert not policy.is_allowed("::1", 80)
    assert not policy.is_allowed("169.254.169.254", 80)
    assert policy.is_allowed("8.8.8.8", 80)  # public stays allowed


def test_a_bare_address_is_a_single_host_network() -> None:
    policy = AddressPolicy(["192.168.1.10"])
    assert policy.is_allowed("192.168.1.10", 1234)
    assert not policy.is_allowed("192.168.1.11", 1234)


def test_host_port_entries_allow_exactly_that_port() -> None:
    policy = AddressPolicy(["127.0.0.1:8080", "intranet.local:8443", "[::1]:9000"])
    assert policy.is_allowed("127.0.0.1", 8080)
    assert policy.is_allowed("::ffff:127.0.0.1", 8080)
    assert not policy.is_allowed("127.0.0.1", 8081)
    assert not policy.is_allowed("127.0.0.2", 8080)
    assert policy.is_allowed("::1", 9000)
    assert not policy.is_allowed("::1", 8080)
    # a named entry trusts whatever that name resolves to, on that port only
    assert policy.is_allowed("10.0.0.5", 8443, "intranet.local")
    assert policy.is_allowed("10.0.0.5", 8443, "INTRANET.local.")
    assert not policy.is_allowed("10.0.0.5", 8443, "other.local")
    assert not policy.is_allowed("10.0.0.5", 443, "intranet.local")
    assert not policy.is_allowed("10.0.0.5", 8443)


def test_allow_list_reaches_check_url() -> None:
    policy = AddressPolicy(["127.0.0.1:8080", "localhost:9000"])
    policy.check_url("http://127.0.0.1:8080/a.jpg")
    policy.check_url("http://2130706433:8080/a.jpg")  # same socket, another spelling
    policy.check_url("http://localhost:9000/a.jpg")
    policy.check_url("http://localhost:8080/a.jpg")  # localhost may be 127.0.0.1:8080
    for url in ("http://127.0.0.1:8081/", "http://localhost:8081/", "http://[::1]:8080/"):
        with pytest.raises(ImageError) as caught:
            policy.check_url(url)
        assert caught.value.code is ErrorCode.BLOCKED_ADDRESS, url


def test_default_ports_count_for_host_port_entries() -> None:
    policy = AddressPolicy(["10.0.0.1:443"])
    policy.check_url("https://10.0.0.1/a.jpg")
    with pytest.raises(ImageError):
        policy.check_url("http://10.0.0.1/a.jpg")


@pytest.mark.parametrize("entry", ["nonsense", "10.0.0.0/33", "host:", "host:0", "host:70000"])
def test_bad_allow_list_entries_fail_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a CIDR"):
        AddressPolicy([entry])


def test_policy_reads_the_settings() -> None:
    settings = Settings(allow_private_networks="10.0.0.0/8, localhost:8080")
    policy = AddressPolicy.from_settings(settings)
    assert policy.is_allowed("10.1.2.3", 80)
    assert policy.is_allowed("127.0.0.1", 8080, "localhost")
    assert not AddressPolicy.from_settings(Settings()).is_allowed("10.1.2.3", 80)
