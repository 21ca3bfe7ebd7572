"""The ``imgbatch`` command: serve, worker, run, db upgrade, openapi."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from imgbatch.config import Settings
from imgbatch.db.models import TERMINAL_STATUSES, Request, RequestStatus, RunnerKind
from imgbatch.db.reads import failed_images, get_request
from imgbatch.errors import CsvError, CsvInvalid
from imgbatch.operations import output_csv_text, submit_csv
from imgbatch.options import OptionsInvalid, OutputOptions
from imgbatch.runtime import Services, background_work, become_runner, open_services

app = typer.Typer(help="CSV of products and image URLs in; compressed hosted JPEGs out.")
db_app = typer.Typer(help="Database maintenance.")
app.add_typer(db_app, name="db")
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """The API, the web page and, without a broker, the in-process workers."""
    import uvicorn

    from imgbatch.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(Settings()), host=host, port=port, log_level="info")


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE instead of stdout")
    ] = None,
) -> None:
    """Print the HTTP API's OpenAPI schema as JSON (sorted keys, so exports diff cleanly)."""
    from imgbatch.api import create_app

    text = openapi_json(create_app(Settings(), work=False).openapi())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def openapi_json(schema: dict[str, Any]) -> str:
    """The one serialisation of the schema that docs/openapi.json is compared against."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the secret webhooks are signed with (IMGBATCH_WEBHOOK_SECRET, or the one
    generated once in the data dir), for receivers to verify signatures."""
    from imgbatch.webhooks import webhook_secret as secret_of

    typer.echo(secret_of(Settings()))


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", help="worker processes (default: IMGBATCH_WORKERS)"),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """A Celery worker that processes chunks (needs IMGBATCH_BROKER_URL)."""
    settings = Settings()
    if not settings.broker_url:
        err.print("[red]imgbatch worker needs IMGBATCH_BROKER_URL (redis://… or amqp://…)[/red]")
        raise typer.Exit(2)
    from imgbatch.dispatch.celery_worker import run_worker

    run_worker(settings, concurrency=concurrency or settings.workers, loglevel=loglevel.upper())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations to IMGBATCH_DATABASE_URL."""
    from imgbatch.db.migrate import upgrade

    settings = Settings()
    upgrade(settings.effective_database_url, revision)
    err.print(f"database at revision {revision}")


@app.command()
def run(
    input_csv: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the input CSV")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="output CSV (default: INPUT-output.csv)")
    ] = None,
    quality: Annotated[
        str | None, typer.Option(help="1-95 (default: IMGBATCH_QUALITY, mapped to the format)")
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option("--format", help="jpeg, webp or avif (default: IMGBATCH_FORMAT)"),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(help="longest side in pixels, 16-16384 (default: IMGBATCH_MAX_SIZE)"),
    ] = None,
) -> None:
    """Process a CSV in this process, without a server, and write the output CSV.

    Exit status: 0 every image succeeded, 1 some failed, 2 the CSV or an option was rejected.
    """
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    try:
        options = OutputOptions.chosen(
            settings, quality=quality, format=output_format, max_size=max_size
        )
    except OptionsInvalid as invalid:
        err.print(f"[red]--{invalid.field.replace('_', '-')}: {invalid.message}[/red]")
        raise typer.Exit(2) from None
    output = output or input_csv.with_name(f"{input_csv.stem}-output.csv")
    services = open_services(settings)
    # The request is pinned to this process: no server sharing the data dir takes its
    # images (it would fetch them with its own settings, e.g. its own allow list).
    me = become_runner(services, RunnerKind.RUN)
    try:
        with input_csv.open("rb") as data:
            request_id = submit_csv(services, data, options=options, runner_id=me.id)
    except CsvInvalid as invalid:
        _print_csv_problems(invalid)
        raise typer.Exit(2) from None
    except CsvError as error:
        err.print(f"[red]{input_csv}: {error}[/red]")
        raise typer.Exit(2) from None
    started = time.monotonic()
    request = asyncio.run(_run_to_the_end(services, request_id))
    with output.open("w", encoding="utf-8", newline="") as out:
        out.writelines(output_csv_text(services, request))
    _print_summary(services, request, output, time.monotonic() - started)
    services.engine.dispose()
    raise typer.Exit(0 if request.status == RequestStatus.COMPLETED else 1)


async def _run_to_the_end(services: Services, request_id: str) -> Request:
    progress = Progress(
        TextColumn("[bold]images"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    async with background_work(services, RunnerKind.RUN):
        with progress:
            task = progress.add_task("images", total=None, failed=0)
            while True:
                request = await asyncio.to_thread(
                    get_request, services.engine, request_id=request_id
                )
                assert request is not None
                done = request.processed_images + request.failed_images
                progress.update(
                    task, total=request.total_images, completed=done, failed=request.failed_images
                )
                if request.status in TERMINAL_STATUSES:
                    return request
                await asyncio.sleep(0.2)


def _print_csv_problems(invalid: CsvInvalid) -> None:
    table = Table(title="The CSV was rejected; nothing was processed", title_justify="left")
    for name in ("line", "column", "message"):
        table.add_column(name)
    for problem in invalid.problems:
        table.add_row(str(problem.line), problem.column or "", problem.message)
    err.print(table)
    if invalid.truncated:
        err.print("(more errors were found; fix these and run again)")


def _print_summary(services: Services, request: Request, output: Path, seconds: float) -> None:
    rate = request.total_images / seconds if seconds else 0.0
    saved = 1 - request.output_bytes / request.input_bytes if request.input_bytes else 0.0
    err.print(
        f"[bold]{request.status}[/bold]: {request.processed_images} of {request.total_images} "
        f"images succeeded ({request.reused_images} reused unchanged), "
        f"{request.failed_images} failed, in {seconds:.1f} s "
        f"({rate:.1f} images/s); output {saved:.0%} smaller than input."
    )
    failures = failed_images(services.engine, request_id=request.id, limit=20)
    if failures:
        table = Table(title="Failed images", title_justify="left")
        for name in ("line", "url", "error_code", "error"):
            table.add_column(name)
        for line, url, code, message in failures:
            table.add_row(str(line), url, code or "", message or "")
        err.print(table)
    err.print(f"output CSV: {output}")
    sys.stderr.flush()
