"""``make bench``: every benchmark, each printing its figures."""

from __future__ import annotations

import sys

from bench import codecs, formats, load, reuse, scaleout, stop, throughput, upload

SUITES = {
    "throughput": throughput.main,
    "upload": upload.main,
    "load": load.main,
    "codecs": codecs.main,
    "scaleout": scaleout.main,
    "stop": stop.main,
    "reuse": reuse.main,
    "formats": formats.main,
}

if __name__ == "__main__":
    # Suite names; "--flags" are left for the suites (``formats --calibrate``).
    chosen = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or list(SUITES)
    for name in chosen:
        SUITES[name]()
