"""The safe downloader: fetch image URLs from public addresses only, within limits.

addresses.py   AddressPolicy: which addresses may be reached (IANA special-purpose lists)
session.py     safe_session: the downloads' aiohttp session, every socket checked and pinned
transport.py   safe_async_client: the webhooks' httpx client, checked and pinned the same way
failures.py    every download failure mapped to an ImageError, in one place
fetcher.py     Fetcher: limits, redirects hop by hop, retries, per-host politeness

Import from the modules themselves: this file imports nothing, so the settings'
validation (``addresses`` alone) does not pull in aiohttp, which the processes that never
download (``imgbatch run``'s own) would import for nothing (about 0.1 s).
"""
