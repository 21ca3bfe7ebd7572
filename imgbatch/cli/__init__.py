"""The ``imgbatch`` command (SPEC §7), one module per group of commands.

Before any command runs, the settings are validated (a malformed one stops it with one
line and exit status 2) and stray ``IMGBATCH_*`` variables are pointed out.
"""

from __future__ import annotations

from typing import Annotated

import typer

from imgbatch import __version__
from imgbatch.cli import requests, run, server
from imgbatch.cli.checks import settings_or_exit, unknown_variables
from imgbatch.cli.server import openapi_json

__all__ = ["app", "openapi_json"]

app = typer.Typer(
    help="CSV of products and image URLs in; compressed hosted images out.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"imgbatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """CSV of products and image URLs in; compressed hosted images out."""
    for warning in unknown_variables():
        typer.echo(warning, err=True)
    settings_or_exit()


server.register(app)
run.register(app)
requests.register(app)
