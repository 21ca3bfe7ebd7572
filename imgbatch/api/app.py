"""The FastAPI application: routes, and the background work started with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

import imgbatch
from imgbatch.api.middleware import HeadAsGet, UploadLimit
from imgbatch.api.routes import (
    docs,
    files,
    health,
    legacy,
    requests,
    samples,
    tenants,
    web,
    webhooks,
)
from imgbatch.config import Settings
from imgbatch.metrics import Metrics, MetricsMiddleware
from imgbatch.runtime import background_work, open_services

DESCRIPTION = """Upload a CSV of products and image URLs; every image is fetched, re-encoded
(as a JPEG at quality 50, or per the upload's output options: WebP or AVIF, a quality, a
size cap) and hosted, and an output CSV maps each input URL to its output."""


def create_app(settings: Settings | None = None, *, work: bool = True) -> FastAPI:
    """The app; with ``work`` it also runs the scheduler (and embedded workers)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = open_services(settings)
        app.state.services = services
        metrics.watch(services.engine, chunk_size=settings.chunk_size)
        try:
            if work:
                async with background_work(services):
                    yield
            else:
                yield
        finally:
            services.engine.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from files the package ships, not a CDN.
    app = FastAPIOffline(
        title="imgbatch",
        version=imgbatch.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=docs.STATIC_DOCS,
        redoc_url=None,  # ours, in routes/docs.py
        favicon_url="/static/favicon.svg",
    )
    app.include_router(requests.router)
    app.include_router(webhooks.router)
    app.include_router(tenants.router)
    app.include_router(legacy.router)
    app.include_router(files.router)
    app.include_router(samples.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.include_router(docs.router)
    metrics = Metrics()
    app.state.metrics = metrics
    # Innermost first: metrics, outermost, sees HEAD requests and refused uploads too.
    app.add_middleware(HeadAsGet)
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
