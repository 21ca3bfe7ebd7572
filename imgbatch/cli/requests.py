"""``imgbatch requests list|show|cancel|retry|export|delete`` and ``imgbatch purge``.

The API's operations on the local database, for use without a server: the same functions
the routes call, and with ``--json`` the same bodies the API answers.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from imgbatch.cli.checks import settings_or_exit
from imgbatch.cli.run import (
    Stopped,
    forget_runner,
    on_stop_signal,
    raise_stopped,
    reap_helper_processes,
    say_stopped,
    work_to_the_end,
)
from imgbatch.cli.summary import counts, print_failures, savings, say
from imgbatch.db.models import TERMINAL_STATUSES, Request, RunnerKind
from imgbatch.db.reads import list_requests, requests_by_prefix
from imgbatch.db.resume import pin_request
from imgbatch.db.work import cancel_request, retry_request
from imgbatch.operations import errors_csv_text, output_csv_text
from imgbatch.runtime import Services, become_runner, open_services

requests_app = typer.Typer(help="The requests in the local database.", no_args_is_help=True)

RequestId = Annotated[str, typer.Argument(help="a request id, or its first characters")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON body")]


@contextmanager
def local_services() -> Iterator[Services]:
    settings = settings_or_exit()
    database = settings.data_dir / "imgbatch.db"
    if settings.database_url is None and not database.is_file():
        # Not created here: run from the wrong directory, an empty new database would
        # answer "no requests" instead of pointing at the mistake.
        say(f"imgbatch: no database at {database.resolve()} (set IMGBATCH_DATA_DIR)")
        raise typer.Exit(1)
    services = open_services(settings)
    try:
        yield services
    finally:
        forget_runner(services)  # registered by a retry that worked here
        services.engine.dispose()


def find(services: Services, given: str) -> Request:
    """The one request ``given`` names (an id or a prefix of one), or exit 1 saying why."""
    matches = requests_by_prefix(services.engine, prefix=given.strip()) if given.strip() else []
    if len(matches) != 1:
        why = "no request" if not matches else "more than one request"
        say(f"imgbatch: {why} with the id {given!r} (see `imgbatch requests list`)")
        raise typer.Exit(1)
    return matches[0]


def status_body(services: Services, request: Request) -> dict[str, Any]:
    from imgbatch.api.schemas import StatusBody

    return StatusBody.of(request, services.settings).model_dump(mode="json")


def _print_json(body: object) -> None:
    sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")


@requests_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=500, help="how many, newest first")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="skip the newest N")] = 0,
    as_json: Json = False,
) -> None:
    """Recent requests, newest first."""
    with local_services() as services:
        found, total = list_requests(services.engine, offset=offset, limit=limit)
        if as_json:
            items = [status_body(services, request) for request in found]
            _print_json({"items": items, "total": total, "offset": offset, "limit": limit})
            return
        for request in found:
            created = request.created_at.strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{request.id}  {created}  {request.status:<21}  {counts(request)}")
        if total > offset + len(found):
            say(f"({total - offset - len(found)} older; --offset {offset + len(found)})")


@requests_app.command()
def show(request_id: RequestId, as_json: Json = False) -> None:
    """A request's status, counts and failures."""
    with local_services() as services:
        request = find(services, request_id)
        if as_json:
            _print_json(status_body(services, request))
            return
        body = status_body(services, request)
        for field in ("request_id", "status", "created_at", "updated_at", "finished_at"):
            typer.echo(f"{field}: {body[field]}")
        typer.echo(f"images: {counts(request)}")
        smaller = savings(request)
        if smaller:
            typer.echo(smaller)
        if request.failed_images:
            print_failures(services, request, None)


@requests_app.command()
def cancel(request_id: RequestId) -> None:
    """Stop outstanding work; its images so far are kept."""
    with local_services() as services:
        request = find(services, request_id)
        if not cancel_request(services.engine, request_id=request.id):
            say(f"imgbatch: request {request.id} had already finished ({request.status})")
            raise typer.Exit(1)
        say(f"cancelled request {request.id}")


@requests_app.command()
def retry(request_id: RequestId) -> None:
    """Queue the failed images of a finished request again (and the cancelled ones of a
    cancelled request) and, without a broker, process them here."""
    on_stop_signal(raise_stopped)
    with local_services() as services:
        request = find(services, request_id)
        if services.settings.embedded and request.status in TERMINAL_STATUSES:
            # Pinned before its images are pending again: they are this process's to do.
            me = become_runner(services, RunnerKind.RUN)
            pin_request(services.engine, request_id=request.id, runner_id=me.id)
        queued = retry_request(services.engine, request_id=request.id)
        if not queued:
            running = request.status not in TERMINAL_STATUSES
            why = "it is still running" if running else "no image failed"
            say(f"imgbatch: nothing to retry in request {request.id}: {why}")
            raise typer.Exit(1)
        say(f"{queued} images of request {request.id} queued again")
        if not services.settings.embedded:
            return  # the Celery workers take them
        started = time.monotonic()
        try:
            request = asyncio.run(work_to_the_end(services, request.id))
        except Stopped as stopped:
            on_stop_signal(signal.SIG_IGN)  # stopping already: another Ctrl-C changes nothing
            say_stopped(services, request.id)
            raise typer.Exit(stopped.code) from None
        finally:
            reap_helper_processes()
        say(f"{request.status}: {counts(request)}, in {time.monotonic() - started:.1f} s.")
        if request.failed_images:
            print_failures(services, request, None)
        raise typer.Exit(0 if not request.failed_images else 1)


@requests_app.command()
def export(
    request_id: RequestId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE instead of stdout")
    ] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="the errors file instead of the output CSV")
    ] = False,
) -> None:
    """Write the output CSV of a finished request (or, with --errors, its errors file)."""
    with local_services() as services:
        request = find(services, request_id)
        if request.status not in TERMINAL_STATUSES:
            say(f"imgbatch: request {request.id} is still {request.status}; export it once done")
            raise typer.Exit(1)
        lines = (errors_csv_text if errors else output_csv_text)(services, request)
        if output is None:
            sys.stdout.writelines(lines)
            return
        with output.open("w", encoding="utf-8", newline="") as out:
            out.writelines(lines)
        say(f"wrote {output}")


@requests_app.command()
def delete(request_id: RequestId) -> None:
    """Delete a finished or cancelled request and its stored images."""
    from imgbatch.deletion import StillRunning, delete_request

    with local_services() as services:
        request = find(services, request_id)
        try:
            deleted = delete_request(services.engine, services.storage, request.id)
        except StillRunning:
            say(f"imgbatch: request {request.id} is still {request.status}; cancel it first")
            raise typer.Exit(1) from None
        if not deleted:  # deleted by someone else since it was found
            say(f"imgbatch: no request with the id {request.id!r}")
            raise typer.Exit(1)
        say(f"deleted request {request.id} and its images")


def purge(
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than", min=0, metavar="DAYS", help="finished more than DAYS days ago"
        ),
    ],
) -> None:
    """Delete every finished request (and its images) that finished more than DAYS ago."""
    from imgbatch.deletion import purge_finished

    with local_services() as services:
        deleted = purge_finished(services.engine, services.storage, timedelta(days=older_than))
        say(f"deleted {deleted} finished requests older than {older_than:g} days")


def register(app: typer.Typer) -> None:
    app.add_typer(requests_app, name="requests")
    app.command()(purge)
