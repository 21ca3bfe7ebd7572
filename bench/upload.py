"""Upload: a 100,000-row CSV (300,000 URLs) answered 202, on SQLite and on PostgreSQL,
with the server's peak RSS; then the output CSV of such a request, streamed. Then the
same rows as an Excel workbook (.xlsx), on SQLite.

    .venv/bin/python -m bench upload               (everything)
    .venv/bin/python -m bench.upload --workbook    (the workbook only)
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openpyxl

from bench.common import (
    IMGBATCH,
    RssSampler,
    bench_env,
    live_server,
    mb,
    postgres_database,
    upload,
)

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


def measure(body: bytes, **env: str) -> tuple[float, int, float, int]:
    """Seconds to 202 and peak RSS during upload; seconds and peak RSS of the output CSV."""
    with live_server(IMGBATCH_ALLOW_PRIVATE_NETWORKS="", **env) as server, httpx.Client() as client:
        with RssSampler(server.process.pid) as upload_rss:
            started = time.perf_counter()
            request = upload(client, server.url, body)
            upload_seconds = time.perf_counter() - started
        request_id = str(request["request_id"])
        # Cancelling makes the request terminal at once, so its output CSV can be read.
        cancel = f"{server.url}/api/v1/requests/{request_id}/cancel"
        client.post(cancel, timeout=120).raise_for_status()
        with RssSampler(server.process.pid) as output_rss:
            started = time.perf_counter()
            size = 0
            url = f"{server.url}/api/v1/requests/{request_id}/output.csv"
            with client.stream("GET", url, timeout=120) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
            output_seconds = time.perf_counter() - started
        assert size > 1_000_000
        return upload_seconds, upload_rss.peak_main, output_seconds, output_rss.peak_main


def workbook() -> None:
    body = big_workbook()
    print(f"\n== Upload: a {ROWS:,}-row workbook (.xlsx), {len(body) / 1e6:.1f} MB ==")
    print(f"{'database':>10} | {'to 202':>8} {'peak RSS':>9} | {'output.csv':>10} {'peak RSS':>9}")
    seconds, rss, out_seconds, out_rss = measure(body)
    print(f"{'SQLite':>10} | {seconds:7.2f}s {mb(rss):>9} | {out_seconds:9.2f}s {mb(out_rss):>9}")


def main() -> None:
    body = big_csv()
    print(f"\n== Upload: {ROWS:,} rows, {3 * ROWS:,} URLs, {len(body) / 1e6:.1f} MB ==")
    print(f"{'database':>10} | {'to 202':>8} {'peak RSS':>9} | {'output.csv':>10} {'peak RSS':>9}")
    seconds, rss, out_seconds, out_rss = measure(body)
    print(f"{'SQLite':>10} | {seconds:7.2f}s {mb(rss):>9} | {out_seconds:9.2f}s {mb(out_rss):>9}")
    with postgres_database() as url, tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [IMGBATCH, "db", "upgrade"],
            env=bench_env(Path(tmp), IMGBATCH_DATABASE_URL=url),
            check=True,
            capture_output=True,
        )
        seconds, rss, out_seconds, out_rss = measure(body, IMGBATCH_DATABASE_URL=url)
    print(
        f"{'PostgreSQL':>10} | {seconds:7.2f}s {mb(rss):>9} | {out_seconds:9.2f}s {mb(out_rss):>9}"
    )
    workbook()


if __name__ == "__main__":
    if "--workbook" in sys.argv:
        workbook()
    else:
        main()
