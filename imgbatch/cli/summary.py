"""What ``imgbatch run`` prints when it ends: counts, where the images are, the failures.

Plain lines on stderr, never cut to a width: a log file or a pipe gets every URL whole.
"""

from __future__ import annotations

from pathlib import Path

import typer

from imgbatch.db.models import Request
from imgbatch.db.reads import failed_images
from imgbatch.runtime import Services
from imgbatch.storage.local import LocalStorage

# Failures shown on the terminal; all of them are in the errors file.
SHOWN_FAILURES = 20


def say(line: str) -> None:
    typer.echo(line, err=True)


def counts(request: Request) -> str:
    """``3 of 6 images succeeded (1 reused unchanged), 2 failed, 1 cancelled``."""
    reused = request.reused_images  # outputs of unchanged inputs (SPEC §9)
    cancelled = request.cancelled_images
    text = f"{request.processed_images} of {request.total_images} images succeeded"
    if reused:
        text += f" ({reused} reused unchanged)"
    text += f", {request.failed_images} failed"
    if cancelled:
        text += f", {cancelled} cancelled"
    return text


def savings(request: Request) -> str | None:
    """How much smaller the outputs are, or None when nothing succeeded to compare."""
    if not request.processed_images or not request.input_bytes:
        return None
    saved = 1 - request.output_bytes / request.input_bytes
    return (
        f"output {saved:.0%} smaller than input "
        f"({_megabytes(request.input_bytes)} → {_megabytes(request.output_bytes)})"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def where_images_are(services: Services, request: Request) -> str:
    storage = services.storage
    if isinstance(storage, LocalStorage):
        base = f"{services.settings.public_url}/files/{request.id}/"
        return (
            f"images: {storage.root / request.id} "
            f"(served under {base} by `imgbatch serve` on the same data dir)"
        )
    return f"images: {storage} under {request.id}/"


def print_summary(
    services: Services,
    request: Request,
    *,
    output: Path,
    errors: Path | None,
    seconds: float,
    before: int = 0,
) -> None:
    """``before``: images a resumed request had done in earlier runs (not in the rate)."""
    done = request.processed_images + request.failed_images - before
    rate = f" ({done / seconds:.1f} images/s)" if seconds > 0 and done > 0 else ""
    earlier = f" ({before} done by an earlier run)" if before else ""
    say(f"{request.status}: {counts(request)}{earlier}, in {seconds:.1f} s{rate}.")
    smaller = savings(request)
    if smaller:
        say(smaller)
    if request.processed_images:
        say(where_images_are(services, request))
    say(f"output CSV: {output.resolve()}")
    if request.failed_images:
        print_failures(services, request, errors)


def print_failures(services: Services, request: Request, errors: Path | None) -> None:
    failures = failed_images(services.engine, request_id=request.id, limit=SHOWN_FAILURES)
    total = request.failed_images
    shown = f"first {len(failures)} of {total}" if total > len(failures) else str(total)
    say(f"failed images ({shown}):")
    for line, url, code, message in failures:
        say(f"  line {line}: {url}: {code}: {message}")
    if total > len(failures):
        say(f"  … and {total - len(failures)} more")
    if errors is not None:
        say(f"errors file (every failed image, ready to fix and run again): {errors.resolve()}")
