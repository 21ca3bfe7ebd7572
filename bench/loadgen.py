"""Load at a fixed rate on one URL, from its own process:
``python -m bench.loadgen URL RPS SECONDS``; prints JSON with latency percentiles.

Threads with persistent HTTP/1.1 connections (``http.client``) share the rate. Latency is
measured from when a request was *due*, not from when it was sent, so a server that falls
behind cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit

THREADS = 20


def run(url: str, rate: float, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    begin = time.perf_counter() + 0.2
    per_thread = int(rate * seconds / THREADS)
    interval = THREADS / rate

    def worker(offset: float) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        for i in range(per_thread):
            due = begin + offset + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
                ok = False
            with lock:
                if ok:
                    latencies.append((time.perf_counter() - due) * 1000)
                else:
                    errors += 1
        conn.close()

    threads = [
        threading.Thread(target=worker, args=(n * interval / THREADS,)) for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    latencies.sort()
    total = per_thread * THREADS
    return {
        "requests": total,
        "errors": errors,
        "rate": total / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "max_ms": latencies[-1],
    }


if __name__ == "__main__":
    target, rps, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(run(target, rps, duration)))
