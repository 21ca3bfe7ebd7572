"""What the pipeline measures per chunk for ``/metrics``: each image's outcome and error
code, and how long each stage (fetch, encode, store) took, as histogram counters.

A chunk tallies in memory and saves once at its end (``db/counters.py``), so the figures
add up across worker processes and machines without a metrics server in each.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from imgbatch.db.counters import Key, add_counts, labels_text
from imgbatch.db.work import ImageResult

log = logging.getLogger(__name__)

STAGES = ("fetch", "encode", "store")
# Seconds; a fetch may take up to IMGBATCH_FETCH_TIMEOUT (30 s by default).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
IMAGES = "imgbatch_images_processed"


def stage_metric(stage: str) -> str:
    return f"imgbatch_{stage}_seconds"


class ChunkTally:
    """The measurements of one chunk, saved together when it ends."""

    def __init__(self) -> None:
        self.counts: defaultdict[Key, float] = defaultdict(float)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Time a stage, whether it succeeds or raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(stage, time.perf_counter() - started)

    def observe(self, stage: str, seconds: float) -> None:
        name = stage_metric(stage)
        # Stored per bucket (not cumulative); the collector adds them up.
        index = bisect.bisect_left(BUCKETS, seconds)
        le = str(BUCKETS[index]) if index < len(BUCKETS) else "+Inf"
        self.counts[(name, labels_text(le=le))] += 1
        self.counts[(name, "sum")] += seconds

    def count_results(self, results: Iterable[ImageResult]) -> None:
        for result in results:
            outcome = "succeeded" if result.succeeded else "failed"
            labels = labels_text(outcome=outcome, error_code=result.error_code or "")
            self.counts[(IMAGES, labels)] += 1

    def save(self, engine: Engine) -> None:
        """Add the tally to the database's counters; a failure only loses these figures."""
        try:
            add_counts(engine, dict(self.counts))
        except Exception:
            log.warning("could not save the metrics of a chunk", exc_info=True)
