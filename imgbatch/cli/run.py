"""``imgbatch run``: the whole job in this process, resumable, stopped cleanly by a signal.

Order matters: the settings and the output path are checked before anything is stored or
fetched; the same input bytes and options find the unfinished request of an earlier run
(so done images are not fetched again); Ctrl-C or SIGTERM stops the workers, keeps what is
done, and says how to go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from imgbatch.cli.checks import settings_or_exit
from imgbatch.cli.summary import print_summary, say
from imgbatch.db.models import TERMINAL_STATUSES, Request, RequestStatus, RunnerKind
from imgbatch.db.reads import get_request
from imgbatch.db.resume import pin_request, unfinished_request
from imgbatch.db.runners import unregister_runner
from imgbatch.errors import CsvError, CsvInvalid
from imgbatch.operations import errors_csv_text, output_csv_text, submit_csv
from imgbatch.options import OptionsInvalid, OutputOptions
from imgbatch.runtime import Services, background_work, become_runner, open_services

# How often the progress is read, and more often for the last images (about a quarter of
# a second of work on two cores): the end is seen 10 ms after it, not 100 ms on average.
POLL_SECONDS = 0.2
FINISHING_IMAGES = 32
FINISHING_SECONDS = 0.02

# Exit statuses (SPEC §7): a shell's 128 + signal number.
STOPPED_BY = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(Exception):
    """A stop signal arrived; ``code`` is the exit status it asks for."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = STOPPED_BY.get(signal.Signals(signum), 128 + signum)


def raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def run(
    input_csv: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, metavar="INPUT.csv", help="the input CSV")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="output CSV (default: INPUT-output.csv)")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="start a new request instead of resuming")
    ] = False,
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

    Running the same command again resumes an unfinished run. Exit status: 0 every image
    succeeded, 1 some failed, 2 the CSV, an option or a setting was rejected, 130/143 stopped by
    Ctrl-C/SIGTERM.
    """
    logging.basicConfig(level=logging.WARNING)
    on_stop_signal(raise_stopped)
    settings = settings_or_exit()
    try:
        options = OutputOptions.chosen(
            settings, quality=quality, format=output_format, max_size=max_size
        )
    except OptionsInvalid as invalid:
        say(f"imgbatch: --{invalid.field.replace('_', '-')}: {invalid.message}")
        raise typer.Exit(2) from None
    output = output or input_csv.with_name(f"{input_csv.stem}-output.csv")
    problem = output_problem(output, input_csv)
    if problem:
        say(f"imgbatch: {output}: {problem}; nothing was done")
        raise typer.Exit(2)
    services = open_services(settings)
    request_id: str | None = None
    try:
        request_id, done_before = _resume_or_submit(services, input_csv, options, fresh=fresh)
        started = time.monotonic()
        request = asyncio.run(work_to_the_end(services, request_id))
        on_stop_signal(raise_stopped)  # the loop's own handlers are gone with it
        errors = write_results(services, request, output)
        seconds = time.monotonic() - started
        print_summary(
            services, request, output=output, errors=errors, seconds=seconds, before=done_before
        )
    except Stopped as stopped:
        on_stop_signal(signal.SIG_IGN)  # stopping already: another Ctrl-C changes nothing
        say_stopped(services, request_id, output=output)
        raise typer.Exit(stopped.code) from None
    finally:
        forget_runner(services)
        services.engine.dispose()
        reap_helper_processes()
    # Everything is written and said: a signal now changes nothing about the outcome.
    on_stop_signal(signal.SIG_IGN)
    raise typer.Exit(0 if request.status == RequestStatus.COMPLETED else 1)


def forget_runner(services: Services) -> None:
    """Unregister this process if it still is a runner (stopped or rejected before its
    work began): its row would otherwise wait for the next start on this host."""
    if services.me is not None:
        with contextlib.suppress(Exception):
            unregister_runner(services.engine, runner_id=services.me.id)
        services.me = None


def on_stop_signal(handler: Callable[[int, FrameType | None], None] | int) -> None:
    for signum in STOPPED_BY:
        signal.signal(signum, handler)


def reap_helper_processes() -> None:
    """Stop the forkserver and the resource tracker multiprocessing started, and wait for
    them: left to notice this process's exit on their own, they outlive it by a moment.
    (Private methods, used by CPython's own tests; absent ones are skipped.)"""
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            with contextlib.suppress(OSError, ChildProcessError):
                stop()


def output_problem(output: Path, input_csv: Path) -> str | None:
    """Why the output CSV could not be written there, checked before any work."""
    if output.exists() and output.resolve() == input_csv.resolve():
        return "is the input file; choose another output"
    if output.is_dir():
        return "is a directory"
    folder = output.parent
    if not folder.is_dir():
        return f"the directory {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the directory {folder} is not writable"
    if output.exists() and not os.access(output, os.W_OK):
        return "is not writable"
    return None


def resume_key(input_csv: Path, options: OutputOptions) -> str:
    """The same bytes run with the same options: what makes a run resumable."""
    with input_csv.open("rb") as data:
        digest = hashlib.file_digest(data, "sha256").hexdigest()
    return f"{digest}:{options.key}"


def _resume_or_submit(
    services: Services, input_csv: Path, options: OutputOptions, *, fresh: bool
) -> tuple[str, int]:
    """The request to work on, and how many of its images were done before."""
    key = resume_key(input_csv, options)
    # The request is pinned to this process: no server sharing the data dir takes its
    # images (it would fetch them with its own settings, e.g. its own allow list).
    me = become_runner(services, RunnerKind.RUN)
    earlier = None if fresh else unfinished_request(services.engine, resume_key=key)
    if earlier is not None:
        pin_request(services.engine, request_id=earlier.id, runner_id=me.id)
        done = earlier.processed_images + earlier.failed_images
        say(
            f"resuming request {earlier.id}: {done} of {earlier.total_images} images already "
            "done (--fresh starts over)"
        )
        return earlier.id, done
    try:
        with input_csv.open("rb") as data:
            return submit_csv(services, data, options=options, runner_id=me.id, resume_key=key), 0
    except CsvInvalid as invalid:
        _print_csv_problems(input_csv, invalid)
        raise typer.Exit(2) from None
    except CsvError as error:
        say(f"imgbatch: {input_csv}: {error}")
        raise typer.Exit(2) from None


async def work_to_the_end(services: Services, request_id: str) -> Request:
    """Work until the request is finished; a stop signal cancels this and raises Stopped
    once the workers are down (leaving the loop's own signal handling out of it)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:  # a second Ctrl-C while stopping changes nothing
            received.append(signum)
            main.cancel()

    for signum in STOPPED_BY:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await _follow(services, request_id)
    except asyncio.CancelledError:
        if not received:
            raise
        raise Stopped(received[0]) from None


async def _follow(services: Services, request_id: str) -> Request:
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]images"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
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
                left = request.total_images - done
                await asyncio.sleep(POLL_SECONDS if left > FINISHING_IMAGES else FINISHING_SECONDS)


def errors_path(output: Path) -> Path:
    """Where a run writes its errors file (SPEC §4): beside the output CSV."""
    return output.with_name(f"{output.stem}-errors{output.suffix or '.csv'}")


def write_results(services: Services, request: Request, output: Path) -> Path | None:
    """Write the output CSV, and the errors file when an image failed (each whole, or not
    at all); returns the errors file's path, if one was written."""
    _write_whole(output, output_csv_text(services, request))
    errors = errors_path(output)
    if not request.failed_images:
        errors.unlink(missing_ok=True)  # an earlier run's list of failures is stale now
        return None
    _write_whole(errors, errors_csv_text(services, request))
    return errors


def _write_whole(path: Path, lines: Iterable[str]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            out.writelines(lines)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def say_stopped(services: Services, request_id: str | None, *, output: Path | None = None) -> None:
    request = get_request(services.engine, request_id=request_id) if request_id else None
    if request is None:
        say("stopped before any work was stored.")
        return
    if request.status in TERMINAL_STATUSES and output is not None:
        say(
            f"stopped: request {request.id} is {request.status}, but {output} was not written; "
            f"`imgbatch requests export {request.id} -o {output}` writes it."
        )
        return
    done = request.processed_images + request.failed_images
    say(
        f"stopped: {done} of {request.total_images} images done and kept (request "
        f"{request.id}); run the same command again to resume."
    )


def _print_csv_problems(input_csv: Path, invalid: CsvInvalid) -> None:
    say(f"imgbatch: {input_csv} was rejected; nothing was processed:")
    for problem in invalid.problems:
        column = f", column {problem.column}" if problem.column else ""
        say(f"  line {problem.line}{column}: {problem.message}")
    if invalid.truncated:
        say("  (more errors were found; fix these and run again)")


def register(app: typer.Typer) -> None:
    app.command()(run)
