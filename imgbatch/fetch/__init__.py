"""The safe downloader: fetch image URLs from public addresses only, within limits.

addresses.py   AddressPolicy: which addresses may be reached (IANA special-purpose lists)
session.py     safe_session: the downloads' aiohttp session, every socket checked and pinned
transport.py   safe_async_client: the webhooks' httpx client, checked and pinned the same way
failures.py    every download failure mapped to an ImageError, in one place
fetcher.py     Fetcher: limits, redirects hop by hop, retries, per-host politeness
"""

from __future__ import annotations

from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.failures import as_image_error
from imgbatch.fetch.fetcher import Fetched, Fetcher, GoOn, Room, Stopped
from imgbatch.fetch.transport import (
    AddressBlocked,
    NameNotResolved,
    Resolver,
    safe_async_client,
    system_resolver,
)

__all__ = [
    "AddressBlocked",
    "AddressPolicy",
    "Fetched",
    "Fetcher",
    "GoOn",
    "NameNotResolved",
    "Resolver",
    "Room",
    "Stopped",
    "as_image_error",
    "safe_async_client",
    "system_resolver",
]
