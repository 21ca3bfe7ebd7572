"""The database life-cycle on SQLite and PostgreSQL: ingest, claims, counters, finalise."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, func, select, update

from imgbatch.config import Settings
from imgbatch.csvfile import CsvLimits, open_csv
from imgbatch.db.bulk import BatchWriter
from imgbatch.db.engine import read_tx, write_tx
from imgbatch.db.ingest import PRODUCT_COLUMNS, PRODUCTS, canonical_url, create_request
from imgbatch.db.leases import MAX_ATTEMPTS, claim_chunk, reap_leases, release_chunk, start_chunk
from imgbatch.db.models import Image, Product, Request, Runner, RunnerKind
from imgbatch.db.reads import get_request
from imgbatch.db.runners import (
    forget_gone_runners,
    heartbeat,
    register_runner,
    unregister_runner,
)
from imgbatch.db.work import (
    Chunk,
    ImageResult,
    cancel_request,
    chunk_rows,
    record_results,
    retry_request,
)
from imgbatch.dispatch.policy import CHUNKS_PER_PROCESS, dispatch_round
from imgbatch.errors import CsvInvalid
from tests.helpers import csv_bytes

LIMITS = CsvLimits(max_rows=100_000, max_urls_per_row=100, max_url_length=2048, max_errors=100)


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


def test_ingest_stores_every_row_as_uploaded(engine: Engine) -> None:
    # Two ingest batches (5,000 rows, then 300), each many statements on SQLite (111
    # images, 124 products per statement), with one to four URLs a row.
    rows = [
        (
            serial,
            f"Product {serial}",
            [f"https://x.example/{serial}/{n}.jpg" for n in range(serial % 4 + 1)],
        )
        for serial in range(1, 5301)
    ]
    store(engine, rows)
    with read_tx(engine) as conn:
        products = conn.execute(
            select(
                Product.position,
                Product.line,
                Product.serial,
                Product.product_name,
                Product.first_seq,
                Product.image_count,
            ).order_by(Product.position)
        ).all()
        images = conn.execute(
            select(Image.seq, Image.product_position, Image.position, Image.url).order_by(Image.seq)
        ).all()
    firsts = [0]
    for _, _, urls in rows:
        firsts.append(firsts[-1] + len(urls))
    assert [tuple(p) for p in products] == [
        (i, i + 2, str(serial), name, firsts[i], len(urls))
        for i, (serial, name, urls) in enumerate(rows)
    ]
    assert [tuple(i) for i in images] == [
        (firsts[i] + n, i, n, url)
        for i, (_, _, urls) in enumerate(rows)
        for n, url in enumerate(urls)
    ]


def _products(first: int, count: int) -> list[tuple[object, ...]]:
    return [("r1", i, i + 2, str(i), f"P{i}", "u", i, 1) for i in range(first, first + count)]


def test_a_batch_that_fails_to_write_fails_the_upload_and_stores_nothing(engine: Engine) -> None:
    store(engine, [(1, "A", ["https://x.example/1.jpg"])])
    # On PostgreSQL a batch is written in a thread while the next is read: its failure
    # (a product position used twice) still surfaces from the upload's transaction.
    failing = pytest.raises(sqlalchemy.exc.IntegrityError)
    with failing, write_tx(engine) as conn, BatchWriter(conn) as writer:
        writer.write([(PRODUCTS, PRODUCT_COLUMNS, _products(1, 3000))])
        writer.write([(PRODUCTS, PRODUCT_COLUMNS, _products(2999, 2))])
    assert count(engine, Product) == 1


def test_a_failure_while_a_batch_is_written_is_the_one_raised(engine: Engine) -> None:
    store(engine, [(1, "A", ["https://x.example/1.jpg"])])
    with pytest.raises(CsvInvalid), write_tx(engine) as conn, BatchWriter(conn) as writer:
        writer.write([(PRODUCTS, PRODUCT_COLUMNS, _products(1, 3000))])
        raise CsvInvalid([])
    assert count(engine, Product) == 1


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


def test_only_leases_of_gone_owners_and_expired_unowned_ones_are_reaped(engine: Engine) -> None:
    urls = [f"https://x.example/{i}.jpg" for i in range(4)]
    store(engine, [(i + 1, f"P{i}", [url]) for i, url in enumerate(urls)])
    alive = register_runner(engine, kind=RunnerKind.SERVE, processes=1)
    gone = register_runner(engine, kind=RunnerKind.RUN, processes=1)
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=0)  # in a queue, expired
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=3600)  # in a queue, in time
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=0, owner=alive.id)
    claim_chunk(engine, request_id="r1", size=1, lease_seconds=3600, owner=gone.id)
    assert reap_leases(engine) == 1  # only the expired unowned lease
    unregister_runner(engine, runner_id=gone.id)
    assert reap_leases(engine) == 1  # the gone runner's lease, although not expired
    chunk = claim_chunk(engine, request_id="r1", size=10, lease_seconds=60)
    assert chunk is not None and chunk.seqs == (0, 3)


def test_a_runner_taken_for_gone_registers_again_at_its_next_beat(engine: Engine) -> None:
    me = register_runner(engine, kind=RunnerKind.WORKER, processes=1)
    with write_tx(engine) as conn:
        conn.execute(update(Runner).values(heartbeat_at=me.started_at - timedelta(hours=1)))
    assert forget_gone_runners(engine, lease_seconds=60) == 1  # missed its beats
    heartbeat(engine, me=me)
    with read_tx(engine) as conn:
        assert list(conn.execute(select(Runner.id, Runner.kind)).all()) == [(me.id, "worker")]


def test_a_runner_whose_pid_is_gone_on_this_host_is_forgotten(engine: Engine) -> None:
    me = register_runner(engine, kind=RunnerKind.SERVE, processes=1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with write_tx(engine) as conn:
        conn.execute(update(Runner).where(Runner.id == me.id).values(pid=dead.pid))
    other = register_runner(engine, kind=RunnerKind.RUN, processes=1)
    assert forget_gone_runners(engine, lease_seconds=60) == 1
    with read_tx(engine) as conn:
        assert list(conn.execute(select(Runner.id)).scalars()) == [other.id]


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
    chunk = claim_chunk(engine, request_id="r1", size=5, lease_seconds=60)
    assert chunk is not None and chunk.seqs == (0, 1)
    started, _ = start_chunk(engine, chunk=chunk, lease_seconds=60, owner="w")
    assert [image.seq for image in started] == [0, 1]
    release_chunk(engine, chunk=chunk)  # its process died
    # Both were started once: each comes back alone, so a poison image wears out only its own.
    poison = claim_chunk(engine, request_id="r1", size=5, lease_seconds=60)
    sibling = claim_chunk(engine, request_id="r1", size=5, lease_seconds=60)
    assert poison is not None and poison.seqs == (0,)
    assert sibling is not None and sibling.seqs == (1,)
    record_results(engine, request_id="r1", results=[ok(1)])
    for _ in range(MAX_ATTEMPTS - 1):
        started, _ = start_chunk(engine, chunk=poison, lease_seconds=60, owner="w")
        assert [image.seq for image in started] == [0]
        release_chunk(engine, chunk=poison)
        poison = claim_chunk(engine, request_id="r1", size=5, lease_seconds=60)
        assert poison is not None and poison.seqs == (0,)
    started, finished = start_chunk(engine, chunk=poison, lease_seconds=60, owner="w")
    assert started == [] and finished  # worn out: failed, and the request is done
    request = get_request(engine, request_id="r1")
    assert request is not None and request.failed_images == 1
    with read_tx(engine) as conn:
        image = conn.execute(select(Image).where(Image.seq == 0)).one()
    assert image.status == "failed" and image.error_code == "internal_error"
    assert image.attempts == MAX_ATTEMPTS
    assert request.processed_images == 1 and request.status == "completed_with_errors"


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


class _Queue:
    """A runner whose chunks travel in a queue; notes who held each lease as it was sent."""

    lease_owner: str | None = None
    chunks_per_process = CHUNKS_PER_PROCESS

    def __init__(self, engine: Engine, *, dies: bool = False, starts_as: str | None = None):
        self.engine = engine
        self.dies = dies
        self.starts_as = starts_as
        self.held_while_sending: list[set[str | None]] = []

    def has_capacity(self) -> bool:
        return not self.held_while_sending

    def submit(self, chunk: Chunk) -> None:
        with read_tx(self.engine) as conn:
            owners = conn.execute(select(Image.lease_owner).where(chunk_rows(chunk))).scalars()
            self.held_while_sending.append(set(owners))
        if self.starts_as is not None:  # a worker of the same runner takes it at once
            start_chunk(self.engine, chunk=chunk, lease_seconds=60, owner=self.starts_as)
        if self.dies:
            raise SystemExit("killed between the claim and the send")


def _owners(engine: Engine) -> set[str | None]:
    with read_tx(engine) as conn:
        query = select(Image.lease_owner).where(Image.status == "processing")
        return set(conn.execute(query).scalars())


def test_a_dispatcher_holds_a_queued_chunk_until_it_is_sent(engine: Engine) -> None:
    store(engine, [(i + 1, f"P{i}", [f"https://x.example/{i}.jpg"]) for i in range(8)])
    dispatcher = register_runner(engine, kind=RunnerKind.SERVE, processes=1)
    settings = Settings(chunk_size=4, lease_seconds=3600)

    queue = _Queue(engine)
    assert dispatch_round(engine, settings, queue, runner_id=dispatcher.id) == 1
    assert queue.held_while_sending == [{dispatcher.id}]
    assert _owners(engine) == {None}  # in the queue: leased to no one until it expires

    # A dispatcher that dies before its message is sent: its chunk goes back with it,
    # not an hour later when the lease would expire.
    with pytest.raises(SystemExit):
        dispatch_round(engine, settings, _Queue(engine, dies=True), runner_id=dispatcher.id)
    assert _owners(engine) == {None, dispatcher.id}
    register_runner(engine, kind=RunnerKind.WORKER, processes=1)  # the one that reaps
    unregister_runner(engine, runner_id=dispatcher.id)
    assert reap_leases(engine) == 4
    assert _owners(engine) == {None}


def test_a_chunk_started_before_its_hand_over_keeps_its_runner(engine: Engine) -> None:
    store(engine, [(i + 1, f"P{i}", [f"https://x.example/{i}.jpg"]) for i in range(4)])
    me = register_runner(engine, kind=RunnerKind.WORKER, processes=1)
    queue = _Queue(engine, starts_as=me.id)  # its message came straight back to it
    dispatch_round(engine, Settings(chunk_size=4), queue, runner_id=me.id)
    assert _owners(engine) == {me.id}  # still held by the runner that runs it


class _Everything:
    """A runner with room for every chunk; keeps what it was given."""

    lease_owner: str | None = None
    chunks_per_process = CHUNKS_PER_PROCESS

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    def has_capacity(self) -> bool:
        return True

    def submit(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)


def test_a_small_request_is_spread_over_every_worker_process(engine: Engine) -> None:
    store(engine, [(i + 1, f"P{i}", [f"https://x.example/{i}.jpg"]) for i in range(20)])
    store(
        engine,
        [(i + 1, f"P{i}", [f"https://x.example/big/{i}.jpg"]) for i in range(200)],
        request_id="r2",
    )
    me = register_runner(engine, kind=RunnerKind.SERVE, processes=4)
    runner = _Everything()
    dispatch_round(engine, Settings(chunk_size=32), runner, runner_id=me.id)
    sizes = {r: [len(c.seqs) for c in runner.chunks if c.request_id == r] for r in ("r1", "r2")}
    assert sizes["r1"] == [5, 5, 5, 5]  # 20 images on 4 processes: a chunk for each
    assert sizes["r2"] == [32] * 6 + [8]  # plenty pending: full chunks (8 was left)


@pytest.mark.parametrize(("runner_kind", "handed"), [("embedded", 6), ("celery", 4)])
def test_the_window_fits_what_a_process_holds(
    engine: Engine, runner_kind: str, handed: int
) -> None:
    """An embedded worker process finishes one chunk's tail while it runs the next and has
    a third ready: a request alone may have three of its chunks in flight per process.
    A Celery pool process runs each chunk to its end: two (one running, one queued)."""
    from imgbatch.dispatch.celery_runner import CeleryRunner
    from imgbatch.dispatch.embedded import EmbeddedRunner

    store(engine, [(i + 1, f"P{i}", [f"https://x.example/{i}.jpg"]) for i in range(400)])
    me = register_runner(engine, kind=RunnerKind.SERVE, processes=2)
    runner = _Everything()
    kinds = {"embedded": EmbeddedRunner, "celery": CeleryRunner}
    runner.chunks_per_process = kinds[runner_kind].chunks_per_process
    assert dispatch_round(engine, Settings(chunk_size=32), runner, runner_id=me.id) == handed
