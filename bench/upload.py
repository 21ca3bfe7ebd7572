"""Upload: a 100,000-row CSV (300,000 URLs) answered 202, on SQLite and on PostgreSQL,
next to the floor of each (``upload_floor``: plain csv + executemany, plain COPY), with the
server's peak RSS; then the output CSV of such a request, streamed. Then the same rows as
an Excel workbook (.xlsx), on SQLite.

    .venv/bin/python -m bench upload               (everything)
    .venv/bin/python -m bench.upload --workbook    (the workbook only)
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openpyxl
import psutil

from bench.common import (
    IMGBATCH,
    RssSampler,
    bench_env,
    live_server,
    mb,
    postgres_database,
    upload,
)
from bench.upload_floor import postgres_floor, sqlite_floor

ROWS = 100_000


def big_csv(rows: int = ROWS) -> bytes:
    # Loopback URLs: refused by the default address policy without touching the network,
    # so the request finishes quickly once the upload has been measured.
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [
        f'{i},Product {i},"http://127.0.0.1:9/{i}/a.jpg,http://127.0.0.1:9/{i}/b.jpg,'
        f'http://127.0.0.1:9/{i}/c.jpg"'
        for i in range(1, rows + 1)
    ]
    return ("\n".join(lines) + "\n").encode()


def big_workbook(rows: int = ROWS) -> bytes:
    """The rows of ``big_csv`` in a workbook as Excel writes one: shared strings, numbers."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Products")
    sheet.append(["S. No.", "Product Name", "Input Image Urls"])
    for i in range(1, rows + 1):
        urls = f"http://127.0.0.1:9/{i}/a.jpg,http://127.0.0.1:9/{i}/b.jpg,http://127.0.0.1:9/{i}/c.jpg"
        sheet.append([float(i), f"Product {i}", urls])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@dataclass
class Upload:
    seconds: float  # to the 202
    cpu: float  # CPU seconds of the server process meanwhile
    rss: int
    output_seconds: float
    output_rss: int


def measure(body: bytes, **env: str) -> Upload:
    """Seconds (and server CPU) to 202, peak RSS during upload; the same of the output CSV."""
    with live_server(IMGBATCH_ALLOW_PRIVATE_NETWORKS="", **env) as server, httpx.Client() as client:
        process = psutil.Process(server.process.pid)
        with RssSampler(server.process.pid) as upload_rss:
            cpu = sum(process.cpu_times()[:2])
            started = time.perf_counter()
            request = upload(client, server.url, body)
            upload_seconds = time.perf_counter() - started
            cpu = sum(process.cpu_times()[:2]) - cpu
        request_id = str(request["request_id"])
        # Cancelling makes the request terminal at once, so its output CSV can be read.
        client.post(
            f"{server.url}/api/v1/requests/{request_id}/cancel", timeout=120
        ).raise_for_status()
        with RssSampler(server.process.pid) as output_rss:
            started = time.perf_counter()
            size = 0
            url = f"{server.url}/api/v1/requests/{request_id}/output.csv"
            with client.stream("GET", url, timeout=120) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
            output_seconds = time.perf_counter() - started
        assert size > 1_000_000
        return Upload(
            upload_seconds, cpu, upload_rss.peak_main, output_seconds, output_rss.peak_main
        )


def _line(database: str, run: Upload, floor: tuple[float, float]) -> str:
    return (
        f"{database:>10} | {run.seconds:6.2f}s {floor[0]:6.2f}s {run.seconds / floor[0]:5.2f} "
        f"| {run.cpu:6.2f}s {floor[1]:6.2f}s {run.cpu / floor[1]:5.2f} | {mb(run.rss):>8} "
        f"| {run.output_seconds:9.2f}s {mb(run.output_rss):>8}"
    )


def workbook() -> None:
    body = big_workbook()
    print(f"\n== Upload: a {ROWS:,}-row workbook (.xlsx), {len(body) / 1e6:.1f} MB ==")
    print(f"{'database':>10} | {'to 202':>8} {'peak RSS':>9} | {'output.csv':>10} {'peak RSS':>9}")
    run = measure(body)
    print(
        f"{'SQLite':>10} | {run.seconds:7.2f}s {mb(run.rss):>9} "
        f"| {run.output_seconds:9.2f}s {mb(run.output_rss):>9}"
    )


def main() -> None:
    body = big_csv()
    print(f"\n== Upload: {ROWS:,} rows, {3 * ROWS:,} URLs, {len(body) / 1e6:.1f} MB ==")
    print("targets: to 202 <= 1.5 x the floor on both databases, and <= 2 s on SQLite (quiet)")
    print("CPU: of the server process during the upload, against the floor's own process")
    print(
        f"{'database':>10} | {'to 202':>7} {'floor':>7} {'ratio':>5} | {'CPU':>7} {'floor':>7} "
        f"{'ratio':>5} | {'peak RSS':>8} | {'output.csv':>10} {'peak RSS':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        floor = sqlite_floor(body, Path(tmp))
    print(_line("SQLite", measure(body), floor))
    with postgres_database() as floor_url:
        floor = postgres_floor(body, floor_url)
    with postgres_database() as url, tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [IMGBATCH, "db", "upgrade"],
            env=bench_env(Path(tmp), IMGBATCH_DATABASE_URL=url),
            check=True,
            capture_output=True,
        )
        run = measure(body, IMGBATCH_DATABASE_URL=url)
    print(_line("PostgreSQL", run, floor))
    workbook()


if __name__ == "__main__":
    if "--workbook" in sys.argv:
        workbook()
    else:
        main()
