"""RFC 9111 as the re-run cache reads it: what is recorded, for how long, with which
validators. The behaviour through the API is in test_reuse.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from imgbatch.reuse.freshness import CachePolicy, cache_control, read_policy

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def policy(redirected: bool = False, delay: float = 0, **headers: str) -> CachePolicy:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return read_policy(
        named,
        requested_at=NOW - timedelta(seconds=delay),
        received_at=NOW,
        redirected=redirected,
    )


def http(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def test_cache_control_directives_and_quoted_values() -> None:
    parsed = cache_control('Max-Age=60, no-cache="Set-Cookie, X-A", private , s-maxage="5"')
    assert parsed == {
        "max-age": "60",
        "no-cache": "Set-Cookie, X-A",
        "private": "",
        "s-maxage": "5",
    }


def test_max_age_less_the_age_it_already_had() -> None:
    assert policy(cache_control="max-age=3600", age="600").fresh_until == NOW + timedelta(
        seconds=3000
    )
    # The round trip counts as age too (§4.2.3).
    assert policy(cache_control="max-age=60", delay=10).fresh_until == NOW + timedelta(seconds=50)
    assert policy(cache_control="max-age=60", age="60").fresh_until is None


def test_a_shared_cache_prefers_s_maxage() -> None:
    assert policy(cache_control="max-age=3600, s-maxage=10").fresh_until == NOW + timedelta(
        seconds=10
    )


def test_expires_counts_from_the_date() -> None:
    headers = {
        "date": http(NOW - timedelta(seconds=100)),
        "expires": http(NOW + timedelta(seconds=100)),
    }
    # Date says the response is already 100 s old: 200 s of life, 100 s left.
    assert policy(**headers).fresh_until == NOW + timedelta(seconds=100)
    assert policy(expires="0").fresh_until is None  # an invalid date: already expired
    assert policy(cache_control="max-age=5", expires=http(NOW + timedelta(days=1))).fresh_until == (
        NOW + timedelta(seconds=5)
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"cache_control": "no-cache, max-age=3600"},
        {"cache_control": "max-age=3600", "vary": "*"},
        {"cache_control": "max-age=abc"},
        {"last_modified": "Mon, 01 Jan 2001 00:00:00 GMT"},  # no heuristic freshness
        {},
    ],
)
def test_no_explicit_freshness_means_ask_every_time(headers: dict[str, str]) -> None:
    answer = policy(**headers)
    assert answer.store and answer.fresh_until is None


def test_a_redirect_is_always_asked_again() -> None:
    assert policy(redirected=True, cache_control="max-age=3600").fresh_until is None


@pytest.mark.parametrize("directive", ["no-store", "private", "max-age=60, private"])
def test_no_store_and_private_are_never_recorded(directive: str) -> None:
    assert not policy(cache_control=directive, etag='"a"').store


def test_only_validators_that_prove_the_same_bytes_are_kept() -> None:
    assert policy(etag='"abc"').conditions() == {"If-None-Match": '"abc"'}
    assert policy(etag='W/"abc"').conditions() == {}
    old = http(NOW - timedelta(days=3))
    assert policy(last_modified=old).conditions() == {"If-Modified-Since": old}
    # Changed in the same second as the response's Date: a later change could share it.
    assert policy(last_modified=http(NOW), date=http(NOW)).conditions() == {}
    both = policy(etag='"e"', last_modified=old).conditions()
    assert both == {"If-None-Match": '"e"', "If-Modified-Since": old}
