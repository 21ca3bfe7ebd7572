"""The FastAPI application: routes, and the background work started with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import imgbatch
from imgbatch.api.routes import files, health, legacy, requests, samples, web, webhooks
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
        metrics.watch(services.engine)
        try:
            if work:
                async with background_work(services):
                    yield
            else:
                yield
        finally:
            services.engine.dispose()

    app = FastAPI(
        title="imgbatch", version=imgbatch.__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.include_router(requests.router)
    app.include_router(webhooks.router)
    app.include_router(legacy.router)
    app.include_router(files.router)
    app.include_router(samples.router)
    app.include_router(health.router)
    app.include_router(web.router)
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
