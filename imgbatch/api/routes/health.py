"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from imgbatch.api.deps import ServicesDep
from imgbatch.db.engine import read_tx
from imgbatch.runtime import Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the database, the storage and (with Celery) the broker answer."""
    checks = await asyncio.to_thread(_checks, services)
    ready = all(result == "ok" for result in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def _checks(services: Services) -> dict[str, str]:
    results: dict[str, str] = {}

    def check(name: str, probe: Any) -> None:
        try:
            probe()
            results[name] = "ok"
        except Exception as error:
            results[name] = f"error: {type(error).__name__}: {error}"[:300]

    def database() -> None:
        with read_tx(services.engine) as conn:
            conn.execute(text("SELECT 1"))

    check("database", database)
    check("storage", services.storage.check)
    if services.settings.broker_url:
        check("broker", lambda: _ping_broker(services))
    return results


def _ping_broker(services: Services) -> None:
    from imgbatch.dispatch.celery_app import create_celery

    app = create_celery(services.settings)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    finally:
        app.close()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format: HTTP traffic, and requests and images by status."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
