"""The database life-cycle on SQLite and PostgreSQL: ingest, claims, counters, finalise."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from imgbatch.csvfile import CsvLimits, open_csv
from imgbatch.db.engine import make_engine, read_tx
from imgbatch.db.ingest import canonical_url, create_request
from imgbatch.db.models import Image, Product, Request
from imgbatch.db.reads import get_request
from imgbatch.db.work import (
    MAX_ATTEMPTS,
    ImageResult,
    cancel_request,
    claim_chunk,
    give_up_or_release,
    reap_expired_leases,
    record_results,
    retry_request,
)
from imgbatch.errors import CsvInvalid
from tests.databases import database_url  # noqa: F401 (fixture)
from tests.helpers import csv_bytes

LIMITS = CsvLimits(max_rows=100_000, max_urls_per_row=100, max_url_length=2048, max_errors=100)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def store(engine: Engine, rows: list[tuple[int, str, list[str]]], request_id: str = "r1") -> str:
    create_request(
        engine, request_id=request_id, reader=open_csv(io.BytesIO(csv_bytes(rows)), LIMITS)
    )
    return request_id


def count(engine: Engine, table: type[Request] | type[Product] | type[Image]) -> int:
    with read_tx(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def ok(seq: int) -> ImageResult:
    return ImageResult(seq, True, input_bytes=100, output_bytes=40, output_key=f"r/{seq}.jpg")


def test_ingest_counts_and_duplicates(engine: Engine) -> None:
    rows = [
        (1, "A", ["https://x.example/1.jpg", "HTTPS://X.example:443/1.jpg#top"]),
        (2, "B", ["https://x.example/2.jpg"]),
    ]
    store(engine, rows)
    request = get_request(engine, request_id="r1")
    assert request is not None
    assert (request.total_products, request.total_images, request.status) == (2, 3, "pending")
    with read_tx(engine) as conn:
        images = conn.execute(
            select(Image.seq, Image.source_seq, Image.copies).order_by(Image.seq)
        ).all()
    assert [tuple(i) for i in images] == [(0, None, 1), (1, 0, 0), (2, None, 0)]


def test_invalid_csv_stores_nothing(engine: Engine) -> None:
    body = csv_bytes([(1, "A", ["https://x.example/1.jpg"])] * 3000 + [(0, "", ["nope"])])
    with pytest.raises(CsvInvalid):
        create_request(engine, request_id="bad", reader=open_csv(io.BytesIO(body), LIMITS))
    assert count(engine, Request) == count(engine, Product) == count(engine, Image) == 0


def test_claim_record_finalise_and_duplicates_follow_their_source(engine: Engine) -> None:
    store(
        engine,
        [
            (1, "A", ["https://x.example/1.jpg", "https://x.example/1.jpg"]),
            (2, "B", ["https://x.example/2.jpg"]),
        ],
    )
    chunk = claim_chunk(engine, request_id="r1", size=10, lease_seconds=60)
    assert chunk is not None and chunk.seqs == (0, 2)  # the duplicate is never claimed
    assert get_request(engine, request_id="r1").status == "processing"  # type: ignore[union-attr]
    assert claim_chunk(engine, request_id="r1", size=10, lease_seconds=60) is None
    failed = ImageResult(2, False, error_code="http_error", error="the server answered 404")
    assert record_results(engine, request_id="r1", results=[ok(0), failed]) is True
    request = get_request(engine, request_id="r1")
    assert request is not None
    assert (request.processed_images, request.failed_images) == (2, 1)
    assert request.status == "completed_with_errors" and request.finished_at is not None
    assert (request.input_bytes, request.output_bytes) == (200, 80)
    # A redelivered chunk changes nothing and does not finalise again.
    assert record_results(engine, request_id="r1", results=[ok(0), ok(2)]) is False
    again = get_request(engine, request_id="r1")
    assert again is not None and (again.processed_images, again.failed_images) == (2, 1)


def test_concurrent_writers_count_exactly_and_finalise_once(engine: Engine) -> None:
    urls = [f"https://x.example/{i}.jpg" for i in range(64)]
    store(engine, [(i + 1, f"P{i}", urls[i * 4 : i * 4 + 4]) for i in range(16)])
    chunks = []
    while chunk := claim_chunk(engine, request_id="r1", size=4, lease_seconds=60):
        chunks.append(chunk)
    assert sum(len(c.seqs) for c in chunks) == 64
    wins: list[bool] = []
    barrier = threading.Barrier(len(chunks))

    def record(seqs: tuple[int, ...]) -> None:
        barrier.wait()
        # Each chunk is recorded twice, as a redelivery would.
        for _ in range(2):
            wins.append(record_results(engine, request_id="r1", results=[ok(s) for s in seqs]))

    threads = [threading.Thread(target=record, args=(c.seqs,)) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    request = get_request(engine, request_id="r1")
    assert request is not None
    assert (request.processed_images, request.failed_images, request.status) == (64, 0, "completed")
    assert wins.count(True) == 1


def test_concurrent_claims_never_overlap(engine: Engine) -> None:
    store(engine, [(i + 1, f"P{i}", [f"https://x.example/{i}.jpg"]) for i in range(200)])
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        while chunk := claim_chunk(engine, request_id="r1", size=7, lease_seconds=60):
            with lock:
                claimed.extend(chunk.seqs)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(200))


def test_expired_leases_go_back_to_pending(engine: Engine) -> None:
    store(engine, [(1, "A", ["https://x.example/1.jpg"]), (2, "B", ["https://x.example/2.jpg"])])
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=0)
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=3600)
    assert reap_expired_leases(engine) == 1
    assert reap_expired_leases(engine, everything=True) == 1
    chunk = claim_chunk(engine, request_id="r1", size=10, lease_seconds=60)
    assert chunk is not None and chunk.seqs == (0, 1)


def test_cancel_and_retry(engine: Engine) -> None:
    store(
        engine,
        [
            (
                1,
                "A",
                ["https://x.example/1.jpg", "https://x.example/2.jpg", "https://x.example/3.jpg"],
            )
        ],
    )
    chunk = claim_chunk(engine, request_id="r1", size=1, lease_seconds=60)
    assert chunk is not None
    assert retry_request(engine, request_id="r1") == 0  # still running
    assert cancel_request(engine, request_id="r1") is True
    assert cancel_request(engine, request_id="r1") is False
    # The chunk in flight finishes after the cancel: it is not counted.
    assert record_results(engine, request_id="r1", results=[ok(0)]) is False
    request = get_request(engine, request_id="r1")
    assert request is not None and request.status == "cancelled" and request.processed_images == 0
    assert retry_request(engine, request_id="r1") == 3
    assert get_request(engine, request_id="r1").status == "pending"  # type: ignore[union-attr]


def test_an_image_that_keeps_killing_workers_is_failed(engine: Engine) -> None:
    store(engine, [(1, "A", ["https://x.example/1.jpg", "https://x.example/2.jpg"])])
    for _ in range(MAX_ATTEMPTS):
        chunk = claim_chunk(engine, request_id="r1", size=1, lease_seconds=60)
        assert chunk is not None and chunk.seqs == (0,)
        give_up_or_release(engine, chunk=chunk)
    request = get_request(engine, request_id="r1")
    assert request is not None and request.failed_images == 1
    with read_tx(engine) as conn:
        image = conn.execute(select(Image).where(Image.seq == 0)).one()
    assert image.status == "failed" and image.error_code == "internal_error"
    # The other image is untouched and still claimable.
    chunk = claim_chunk(engine, request_id="r1", size=5, lease_seconds=60)
    assert chunk is not None and chunk.seqs == (1,)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Img.Example:80/a.jpg#x", "http://img.example/a.jpg"),
        ("https://img.example:443/a.jpg?b=1", "https://img.example/a.jpg?b=1"),
        ("https://img.example:8443/A.jpg", "https://img.example:8443/A.jpg"),
        ("https://img.example", "https://img.example/"),
        ("https://img.example?x=1#y", "https://img.example/?x=1"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        ("http://User@Img.Example:8080/a", "http://User@img.example:8080/a"),
        # Already canonical (returned as is), and the near misses that are not.
        ("http://img.example:9/1/a.jpg", "http://img.example:9/1/a.jpg"),
        ("http://img.example:80/a.jpg", "http://img.example/a.jpg"),
        ("https://img.example:443/a.jpg", "https://img.example/a.jpg"),
        ("http://img.example:443/a.jpg", "http://img.example:443/a.jpg"),
        ("http://img.example:0080/a.jpg", "http://img.example/a.jpg"),
        ("http://img.example:08080/a.jpg", "http://img.example:8080/a.jpg"),
        ("  http://img.example/a.jpg \n", "http://img.example/a.jpg"),
        ("http://img.example/a b.jpg", "http://img.example/a b.jpg"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
