"""``make bench``: every benchmark, each printing its figures."""

from __future__ import annotations

import sys

from bench import codecs, load, reuse, scaleout, throughput, upload

SUITES = {
    "throughput": throughput.main,
    "upload": upload.main,
    "load": load.main,
    "codecs": codecs.main,
    "scaleout": scaleout.main,
    "reuse": reuse.main,
}

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(SUITES)
    for name in chosen:
        SUITES[name]()
