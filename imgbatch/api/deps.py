"""Dependencies the routes declare, as ``Annotated`` aliases.

The ones that do no I/O are ``async``: FastAPI runs a plain ``def`` dependency in a worker
thread, and a hop per dependency made a status read several times slower under load.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request
from sqlalchemy import Engine

from imgbatch.config import Settings
from imgbatch.db import models
from imgbatch.db.reads import get_request
from imgbatch.db.tenants import owner_of
from imgbatch.runtime import Services
from imgbatch.storage import Storage


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _settings(services: ServicesDep) -> Settings:
    return services.settings


async def _engine(services: ServicesDep) -> Engine:
    return services.engine


async def _storage(services: ServicesDep) -> Storage:
    return services.storage


ServicesDep = Annotated[Services, Depends(_services)]
SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
StorageDep = Annotated[Storage, Depends(_storage)]


async def _owner(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> str | None:
    """With IMGBATCH_API_KEYS set, the caller's key (hashed) owns what it uploads."""
    keys = settings.api_key_list
    if not keys:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(token, key) for key in keys):
        raise HTTPException(
            401,
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner_of(token)


OwnerDep = Annotated[str | None, Depends(_owner)]


async def _found_request(request_id: str, engine: EngineDep, owner: OwnerDep) -> models.Request:
    # One primary-key read, well under a millisecond: cheaper in the event loop than the
    # hop to a worker thread, which under load waits for the GIL (the status API's p99).
    found = get_request(engine, request_id=request_id)
    # Another key's request is as invisible as one that does not exist.
    if found is None or (owner is not None and found.owner != owner):
        raise HTTPException(404, f"no request with id {request_id!r}")
    return found


RequestDep = Annotated[models.Request, Depends(_found_request)]
# Bounded: a huge offset would overflow the database's 64-bit integer (a 500, not a 422).
MAX_OFFSET = 1_000_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page, at most 500")]
