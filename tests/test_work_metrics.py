"""/metrics moves with the work: images by outcome and error code, stage durations,
chunks pending, webhook attempts."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from imgbatch.api import create_app
from imgbatch.config import Settings
from tests.helpers import csv_bytes, wait_until
from tests.origin import Origin, answer


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_move_with_work(tmp_path: Path, photo_origin: Origin, photos: list[Path]) -> None:
    photo_origin.route("/missing.jpg", answer(404, b"gone"))
    photo_origin.route("/hook", answer(204))
    urls = [photo_origin.url(f"/photos/{photos[0].name}"), photo_origin.url("/missing.jpg")]
    body = csv_bytes([(1, "SKU1", urls)])
    settings = Settings(
        data_dir=tmp_path,
        allow_private_networks=f"127.0.0.1:{photo_origin.port}",
        workers=1,
        fetch_retries=0,
        # Both requests hold the same photo: without this the second one's copy would be
        # reused (SPEC §9), not encoded, and each stage is counted once per image here.
        reuse=False,
    )
    files = {"file": ("a.csv", body, "text/csv")}
    with TestClient(create_app(settings, work=False)) as client:
        client.post("/api/v1/requests", files=files)
        before = samples(client)
        assert value(before, "imgbatch_chunks", state="pending") == 1
        assert (
            value(before, "imgbatch_images_processed_total", outcome="succeeded", error_code="")
            == 0
        )
    with TestClient(create_app(settings)) as client:
        request_id = client.post(
            "/api/v1/requests", files=files, data={"webhook_url": photo_origin.url("/hook")}
        ).json()["request_id"]

        def delivered() -> bool:
            status = client.get(f"/api/v1/requests/{request_id}").json()
            return status["webhook_status"] == "delivered"

        wait_until(delivered, timeout=60)
        found = samples(client)
    # Both requests ran (the first one resumed at the second start).
    assert value(found, "imgbatch_images_processed_total", outcome="succeeded", error_code="") == 2
    failed = value(
        found, "imgbatch_images_processed_total", outcome="failed", error_code="http_error"
    )
    assert failed == 2
    assert value(found, "imgbatch_fetch_seconds_count") == 4
    assert value(found, "imgbatch_encode_seconds_count") == 2
    assert value(found, "imgbatch_store_seconds_count") == 2
    assert value(found, "imgbatch_encode_seconds_bucket", le="+Inf") == 2
    assert value(found, "imgbatch_encode_seconds_sum") > 0
    assert value(found, "imgbatch_webhook_attempts_total", outcome="delivered") == 1
    assert value(found, "imgbatch_chunks", state="in_flight") == 0
    assert value(found, "imgbatch_chunks", state="pending") == 0
