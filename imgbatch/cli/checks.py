"""What every command checks before it does anything: the settings, and stray variables.

A malformed setting stops the command with one line naming the variable (SPEC §6), never a
traceback; a misspelt ``IMGBATCH_*`` variable would be ignored silently, so it gets a
warning naming the closest known setting.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping

import typer
from pydantic import ValidationError

from imgbatch.config import Settings

PREFIX = "IMGBATCH_"
# Read by the test suite, not by the service: no warning for it.
NOT_SETTINGS = frozenset({"IMGBATCH_REQUIRE_SERVICES"})


class BadSetting(Exception):
    """A setting that cannot be used; the message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and command-line overrides), or BadSetting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise BadSetting(describe(error)) from None


def describe(error: ValidationError) -> str:
    """The first problem, as ``IMGBATCH_QUALITY=200: Input should be less than or equal
    to 95``; the others, if any, follow on the same line."""
    problems = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = PREFIX + field.upper()
        message = str(problem["msg"]).removeprefix("Value error, ")
        shown = os.environ.get(variable, problem.get("input"))
        problems.append(f"{variable}={shown}: {message}")
    return "; ".join(problems)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except BadSetting as bad:
        typer.echo(f"imgbatch: {bad}", err=True)
        raise typer.Exit(2) from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``IMGBATCH_*`` variable that is no setting, naming the closest."""
    known = sorted(PREFIX + name.upper() for name in Settings.model_fields)
    warnings = []
    for name in sorted(environ if environ is not None else os.environ):
        if not name.startswith(PREFIX) or name in known or name in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"imgbatch: warning: {name} is not a setting and is ignored{hint}")
    return warnings
