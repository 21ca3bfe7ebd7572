"""``serve``, ``worker``, ``db upgrade``, ``openapi`` and ``webhook-secret``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from imgbatch.cli.checks import settings_or_exit

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """The API, the web page and, without a broker, the in-process workers."""
    import uvicorn

    from imgbatch.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(settings_or_exit()), host=host, port=port, log_level="info")


def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE instead of stdout")
    ] = None,
) -> None:
    """Print the HTTP API's OpenAPI schema as JSON (sorted keys, so exports diff cleanly)."""
    from imgbatch.api import create_app

    text = openapi_json(create_app(settings_or_exit(), work=False).openapi())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def openapi_json(schema: dict[str, Any]) -> str:
    """The one serialisation of the schema that docs/openapi.json is compared against."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def webhook_secret(
    data_dir: Annotated[
        Path | None, typer.Option(help="the service's data dir (default: IMGBATCH_DATA_DIR)")
    ] = None,
) -> None:
    """Print the secret webhooks are signed with (IMGBATCH_WEBHOOK_SECRET, or the one the
    service generated in its data dir), for receivers to verify signatures."""
    from imgbatch.webhooks import SECRET_FILE, WebhookSecretInvalid
    from imgbatch.webhooks import webhook_secret as secret_of

    settings = settings_or_exit(**({"data_dir": data_dir} if data_dir else {}))
    stored = settings.data_dir / SECRET_FILE
    # Printing must not create one: a new secret here would not be the one the service signs
    # with (run from another directory, it would not even be in the service's data dir).
    if not settings.webhook_secret and not stored.is_file():
        typer.echo(
            f"imgbatch: no webhook secret in {settings.data_dir.resolve()}: the service creates "
            "one when it starts; pass --data-dir or set IMGBATCH_WEBHOOK_SECRET",
            err=True,
        )
        raise typer.Exit(1)
    try:
        typer.echo(secret_of(settings))
    except WebhookSecretInvalid as invalid:
        typer.echo(f"imgbatch: {invalid}", err=True)
        raise typer.Exit(2) from None


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", help="worker processes (default: IMGBATCH_WORKERS)"),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """A Celery worker that processes chunks (needs IMGBATCH_BROKER_URL)."""
    settings = settings_or_exit()
    if not settings.broker_url:
        typer.echo("imgbatch: worker needs IMGBATCH_BROKER_URL (redis://… or amqp://…)", err=True)
        raise typer.Exit(2)
    from imgbatch.dispatch.celery_worker import run_worker

    run_worker(settings, concurrency=concurrency or settings.workers, loglevel=loglevel.upper())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations to IMGBATCH_DATABASE_URL."""
    from imgbatch.db.migrate import upgrade

    upgrade(settings_or_exit().effective_database_url, revision)
    typer.echo(f"database at revision {revision}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(openapi)
    app.command("webhook-secret")(webhook_secret)
    app.command()(worker)
    app.add_typer(db_app, name="db")
