"""The console script's entry point: light, so a stop signal during the imports (about a
second before any command runs) ends the process quietly instead of with a traceback."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop_quietly(signum: int, _frame: FrameType | None) -> None:
    sys.stderr.write("imgbatch: stopped before anything was done\n")
    raise SystemExit(128 + signum)


def main() -> None:
    previous = {
        signum: signal.signal(signum, _stop_quietly) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    from imgbatch.cli import app  # the heavy part: FastAPI, SQLAlchemy, Pillow, …

    for signum, handler in previous.items():
        signal.signal(signum, handler)
    app()


if __name__ == "__main__":
    main()
