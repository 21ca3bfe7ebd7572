"""Driving the real ``imgbatch`` console script as a subprocess, as a person would."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

IMGBATCH = str(Path(sys.executable).with_name("imgbatch"))


def cli_env(data_dir: Path, **env: str) -> dict[str, str]:
    """The test's environment without its own IMGBATCH_* variables, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("IMGBATCH_")}
    return {**base, "IMGBATCH_DATA_DIR": str(data_dir), "IMGBATCH_WORKERS": "2", **env}


def run_cli(
    args: list[str], data_dir: Path, *, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGBATCH, *args],
        env=cli_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], data_dir: Path, **env: str) -> subprocess.Popen[str]:
    """Start in a session of its own, as a shell starts a foreground job: a signal to its
    process group reaches it and every process it started, like Ctrl-C on a terminal."""
    return subprocess.Popen(
        [IMGBATCH, *args],
        env=cli_env(data_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def signal_group(process: subprocess.Popen[str], signum: signal.Signals) -> None:
    os.killpg(process.pid, signum)


def processes_in_session(session: int) -> list[int]:
    """Every live process of a session, from /proc (zombies count: not reaped is not gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == session:  # fields after the name: state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


def query(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the embedded database of a data dir (WAL: readable while a run writes)."""
    with closing(sqlite3.connect(data_dir / "imgbatch.db", timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def succeeded_images(data_dir: Path) -> int:
    """Images done so far; 0 while the run has not created its database yet."""
    try:
        return int(query(data_dir, "SELECT count(*) FROM images WHERE status = 'succeeded'")[0][0])
    except sqlite3.OperationalError:  # no file or no tables yet
        return 0
