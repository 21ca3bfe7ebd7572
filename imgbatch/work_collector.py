"""``/metrics`` figures kept in the database: counters the workers and webhook senders add
to (``db/counters.py``), and the chunks waiting or in flight right now."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from imgbatch.db.counters import WEBHOOK_ATTEMPTS, labels_of, read_counts
from imgbatch.db.engine import read_tx
from imgbatch.db.models import ACTIVE_STATUSES, Image, ImageStatus, Request
from imgbatch.work_metrics import BUCKETS, IMAGES, STAGES, stage_metric


class CountersCollector(Collector):
    def __init__(self, engine: Engine, chunk_size: int) -> None:
        self.engine = engine
        self.chunk_size = chunk_size

    def collect(self) -> Iterator[Metric]:
        counts = read_counts(self.engine)
        images = CounterMetricFamily(
            IMAGES, "Images processed, by outcome and error code", labels=["outcome", "error_code"]
        )
        webhooks = CounterMetricFamily(
            WEBHOOK_ATTEMPTS,
            "Webhook delivery attempts, by outcome (delivered, retry, failed: gave up)",
            labels=["outcome"],
        )
        for (name, labels), value in sorted(counts.items()):
            parsed = labels_of(labels)
            if name == IMAGES:
                images.add_metric([parsed.get("outcome", ""), parsed.get("error_code", "")], value)
            elif name == WEBHOOK_ATTEMPTS:
                webhooks.add_metric([parsed.get("outcome", "")], value)
        yield images
        yield webhooks
        for stage in STAGES:
            yield _histogram(stage, counts)
        yield self._chunks()

    def _chunks(self) -> GaugeMetricFamily:
        """Chunks waiting and claimed, from the pending and processing source images of
        active requests (one index range per request)."""
        chunks = GaugeMetricFamily(
            "imgbatch_chunks", "Chunks of work now, by state (pending, in_flight)", labels=["state"]
        )
        active = select(Request.id).where(Request.status.in_(ACTIVE_STATUSES))
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(Image.request_id, Image.status, func.count())
                .where(
                    Image.request_id.in_(active),
                    Image.status.in_((ImageStatus.PENDING, ImageStatus.PROCESSING)),
                    Image.source_seq.is_(None),
                )
                .group_by(Image.request_id, Image.status)
            ).all()
        totals: defaultdict[str, int] = defaultdict(int)
        for _, status, count in rows:
            totals[status] += math.ceil(count / self.chunk_size)
        chunks.add_metric(["pending"], totals[ImageStatus.PENDING])
        chunks.add_metric(["in_flight"], totals[ImageStatus.PROCESSING])
        return chunks


def _histogram(stage: str, counts: dict[tuple[str, str], float]) -> HistogramMetricFamily:
    name = stage_metric(stage)
    cumulative = 0.0
    buckets = []
    for le in [*(str(b) for b in BUCKETS), "+Inf"]:
        cumulative += counts.get((name, f"le={le}"), 0.0)
        buckets.append((le, cumulative))
    return HistogramMetricFamily(
        name,
        f"Seconds one image spent in the {stage} stage",
        buckets=buckets,
        sum_value=counts.get((name, "sum"), 0.0),
    )
