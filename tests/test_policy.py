"""The one dispatch policy, in both modes: a poison image wears out, a cancel stops
claimed work."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from imgbatch.api import create_app
from imgbatch.config import Settings
from imgbatch.db.engine import make_engine, read_tx
from imgbatch.db.leases import MAX_ATTEMPTS
from imgbatch.db.models import Image
from tests.helpers import csv_bytes, wait_terminal, wait_until
from tests.modes import Mode
from tests.origin import Origin, kill_client


def image_rows(settings: Settings, request_id: str) -> list[Any]:
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        with read_tx(engine) as conn:
            return list(
                conn.execute(
                    select(Image.seq, Image.status, Image.error_code, Image.attempts)
                    .where(Image.request_id == request_id)
                    .order_by(Image.seq)
                ).all()
            )
    finally:
        engine.dispose()


def test_an_image_that_kills_its_worker_every_time_fails_after_bounded_attempts(
    mode: Mode, tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    poison = photo_origin.route("/poison.jpg", kill_client)
    good = [photo_origin.url(f"/photos/{photo.name}?n={i}") for i, photo in enumerate(photos[:7])]
    rows = [(1, "SKU1", [*good[:3], poison]), (2, "SKU2", good[3:])]
    settings = mode.settings(
        {
            "data_dir": tmp_path / "data",
            "allow_private_networks": f"127.0.0.1:{photo_origin.port}",
            "workers": 2,
            "chunk_size": 4,
            "fetch_retries": 0,
        }
    )
    with TestClient(create_app(settings)) as client:
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        final = wait_terminal(client, body["request_id"], timeout=180)
    assert final["status"] == "completed_with_errors", final
    assert final["processed_images"] == 7 and final["failed_images"] == 1
    rows_after = image_rows(settings, body["request_id"])
    (killer,) = [row for row in rows_after if row.status == "failed"]
    assert killer.seq == 3 and killer.error_code == "internal_error"
    # Every start of the poison image killed a process; it was started MAX_ATTEMPTS times.
    assert photo_origin.hits["/poison.jpg"] == killer.attempts == MAX_ATTEMPTS
    # Its siblings were tried again alone, never worn out by it.
    assert all(row.attempts < MAX_ATTEMPTS for row in rows_after if row.seq != killer.seq)
    print(f"\npoison image ({mode.name}): {photo_origin.hits['/poison.jpg']} starts, each killed")


def test_cancel_stops_downloads_and_stores_of_claimed_work(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 1.0  # a slow origin: the chunk is mid-way when the cancel lands
    urls = [photo_origin.url(f"/photos/{photos[i % len(photos)].name}?n={i}") for i in range(48)]
    rows = [(i + 1, f"SKU{i}", urls[i * 4 : i * 4 + 4]) for i in range(12)]
    settings = Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=f"127.0.0.1:{photo_origin.port}",
        workers=1,
        chunk_size=16,
        chunks_per_request=1,
        fetch_per_host=4,
        fetch_retries=0,
    )
    with TestClient(create_app(settings)) as client:
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        request_id = body["request_id"]
        # The first round of four is stored (a chunk records at its end, so not yet
        # recorded), the second round downloads, the third is a second away.
        outputs = settings.data_dir / "images" / request_id
        stored_before = wait_until(lambda: list(outputs.glob("*.jpg")), timeout=60, interval=0.01)
        cancelled = client.post(f"/api/v1/requests/{request_id}/cancel")
        cancelled_at = time.monotonic()
        assert cancelled.status_code == 200, cancelled.text
        time.sleep(3)  # the downloads in flight end, and the chunk reaches its record
        final = client.get(f"/api/v1/requests/{request_id}").json()
    before = [t for _, t in photo_origin.arrivals if t <= cancelled_at]
    after = [t for _, t in photo_origin.arrivals if t > cancelled_at]
    assert final["status"] == "cancelled"
    assert after == [], f"{len(after)} downloads started after the cancel"
    rows_after = image_rows(settings, request_id)
    stored = {int(p.stem) for p in outputs.glob("*.jpg")}
    cancelled_seqs = {row.seq for row in rows_after if row.status == "cancelled"}
    assert stored.isdisjoint(cancelled_seqs)
    assert stored == {row.seq for row in rows_after if row.status == "succeeded"}
    print(
        f"\ncancel: {len(before)} downloads started before it, {len(after)} after; "
        f"{len(stored_before)} outputs stored before it and deleted after; "
        f"{len(stored)} outputs left, {len(cancelled_seqs)} images cancelled"
    )


def test_by_default_a_request_has_two_chunks_in_flight_per_worker_process(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    photo_origin.delay = 0.5  # chunks stay in flight long enough to be counted
    urls = [photo_origin.url(f"/photos/{photos[i % len(photos)].name}?w={i}") for i in range(40)]
    rows = [(i + 1, f"SKU{i}", urls[i * 4 : i * 4 + 4]) for i in range(10)]
    settings = Settings(
        data_dir=tmp_path / "data",
        allow_private_networks=f"127.0.0.1:{photo_origin.port}",
        workers=2,
        chunk_size=2,
        fetch_retries=0,
    )
    seen: list[int] = []

    def in_flight() -> int:
        with read_tx(engine) as conn:
            rows = conn.execute(select(Image.seq).where(Image.status == "processing")).all()
        seen.append(len(rows))
        return len(rows)

    with TestClient(create_app(settings)) as client:
        engine = make_engine(settings.effective_database_url, pool_size=1)
        body = client.post("/api/v1/requests", files={"file": ("a.csv", csv_bytes(rows))}).json()
        # 2 processes x 2 chunks x 2 images: one chunk runs and one waits in each process.
        wait_until(lambda: in_flight() == 8, timeout=60, interval=0.02)
        final = wait_terminal(client, body["request_id"], timeout=120)
        engine.dispose()
    assert final["status"] == "completed", final
    assert max(seen) == 8, seen
