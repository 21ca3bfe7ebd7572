"""End-to-end images/s against two CPU ceilings (issue: every core busy).

Ceilings, in a process pool with one process per core and no network, over the photo
corpus: plain Pillow (decode, convert to RGB, re-encode at q50: what the targets name)
and libjpeg-turbo direct (simplejpeg decode + encode, nothing else). End to end: 600
distinct URLs served by an origin that adds 50 or 0 ms per response, through
``imgbatch serve`` (upload to terminal status) and ``imgbatch run`` (the whole command).

All of it interleaved in one run, each figure as images/s of wall time and as CPU time
per image: user + system of the worker processes (of the pool for the ceilings), and of
the whole tree, the server or command process included (its share also answers the
bench's status polls). On a machine that other work shares, wall-time ratios move with
that work; CPU per image does not, so its ratio is the one to trust there. Also the peak
PSS of the server and its workers, and the share of the machine's cores left idle during each
end-to-end run (idle + iowait in `/proc/stat`): time the pipeline did not keep them fed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psutil

from bench.codecs import plain_pillow, turbo_direct
from bench.common import (
    IMGBATCH,
    bench_env,
    csv_text,
    distinct_urls,
    live_server,
    origin,
    photo_names,
    upload,
    wait_terminal,
)
from bench.origin import PHOTOS

IMAGES = 600
PER_ROW = 3
DELAYS_MS = (50, 0)


@dataclass
class Figure:
    rate: float  # images/s, wall time
    cpu_ms: float  # CPU milliseconds per image, every process of the tree
    worker_ms: float  # the same without the root process (server or command): the workers
    pss: int = 0  # peak PSS of the tree, bytes
    idle: float | None = None  # end to end: the machine's CPU time left idle (0-1)
    origin_ms: float | None = None  # end to end: the origin's CPU per image, on the same cores


def _machine_times() -> list[int]:
    """The machine's CPU time by state (``/proc/stat``'s first line, in clock ticks)."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


@dataclass
class IdleMeter:
    """The share of every core's time spent idle (idle + iowait) while in the block: a
    pipeline that keeps its cores fed leaves none, whatever else the machine runs."""

    share: float = 0.0

    def __enter__(self) -> IdleMeter:
        self._start = _machine_times()
        return self

    def __exit__(self, *exc: object) -> None:
        spent = [end - start for start, end in zip(self._start, _machine_times(), strict=True)]
        self.share = (spent[3] + spent[4]) / max(1, sum(spent))


@dataclass
class TreeSampler:
    """CPU time and peak PSS of a process and its descendants, sampled in a thread.

    A process's CPU counts from its first sample (or from 0 when it appeared after the
    start); one that exits counts to its last sample, at most ``interval`` short."""

    pid: int
    interval: float = 0.25
    pss: bool = True
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    peak_pss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> TreeSampler:
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu(self) -> float:
        return sum(last - self._first.get(pid, 0.0) for pid, last in self._last.items())

    @property
    def root_cpu(self) -> float:
        return self._last.get(self.pid, 0.0) - self._first.get(self.pid, 0.0)

    def figure(self, images: int, seconds: float) -> Figure:
        return Figure(
            images / seconds,
            self.cpu * 1000 / images,
            (self.cpu - self.root_cpu) * 1000 / images,
            self.peak_pss,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, initial: bool = False) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total_pss = 0
        for process in tree:
            try:
                times = process.cpu_times()
                if self.pss and not initial:
                    total_pss += process.memory_full_info().pss
            except psutil.Error:
                continue
            used = times.user + times.system
            if initial:
                self._first[process.pid] = used
            self._last[process.pid] = used
        self.peak_pss = max(self.peak_pss, total_pss)


def ceiling(work: Callable[[bytes], object], images: int = IMAGES) -> Figure:
    """Decode + re-encode in a process pool, one process per core."""
    payloads = [(PHOTOS / name).read_bytes() for name in photo_names()]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(work, payloads))  # warm the workers up
        with TreeSampler(os.getpid(), pss=False) as sampler:
            started = time.perf_counter()
            list(pool.map(work, (payloads[i % len(payloads)] for i in range(images)), chunksize=4))
            elapsed = time.perf_counter() - started
        return sampler.figure(images, elapsed)  # worker_ms: without this waiting process


@dataclass
class OriginMeter:
    """CPU seconds (user + system) that the origin process serving ``base``, one of this
    bench's children, spent while in the block: it shares the cores with the pipeline."""

    base: str
    seconds: float = 0.0

    def __enter__(self) -> OriginMeter:
        self._start = self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._cpu() - self._start

    def _cpu(self) -> float:
        port = self.base.rsplit(":", 1)[1]
        for child in psutil.Process().children():
            command = child.cmdline()
            if "bench.origin" in command and port in command:
                times = child.cpu_times()
                return float(times.user + times.system)
        raise RuntimeError(f"no origin process for {self.base}")


def _rows(base: str) -> list[list[str]]:
    urls = distinct_urls(base, IMAGES)
    return [urls[i : i + PER_ROW] for i in range(0, IMAGES, PER_ROW)]


def serve_rate(delay_ms: float, data: Path) -> Figure:
    with origin(delay_ms) as base, live_server(data) as server, httpx.Client() as client:
        body = csv_text(_rows(base))
        with (
            TreeSampler(server.process.pid) as sampler,
            IdleMeter() as idle,
            OriginMeter(base) as served,
        ):
            started = time.perf_counter()
            request = upload(client, server.url, body)
            final = wait_terminal(client, server.url, str(request["request_id"]), poll=0.1)
            elapsed = time.perf_counter() - started
        assert final["status"] == "completed", final
        figure = sampler.figure(IMAGES, elapsed)
        return replace(figure, idle=idle.share, origin_ms=served.seconds * 1000 / IMAGES)


def run_rate(delay_ms: float, data: Path) -> Figure:
    with origin(delay_ms) as base, tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        source.write_text(csv_text(_rows(base)))
        started = time.perf_counter()
        command = subprocess.Popen(
            [IMGBATCH, "run", str(source), "-o", str(Path(tmp) / "out.csv")],
            env=bench_env(data),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with TreeSampler(command.pid) as sampler, IdleMeter() as idle, OriginMeter(base) as served:
            assert command.wait() == 0
        elapsed = time.perf_counter() - started
        figure = sampler.figure(IMAGES, elapsed)
        return replace(figure, idle=idle.share, origin_ms=served.seconds * 1000 / IMAGES)


def _print(name: str, figure: Figure, pillow: Figure, turbo: Figure) -> None:
    pss = f" {figure.pss / 1e6:5.0f} MB" if figure.pss else ""
    idle = "" if figure.idle is None else f" | {figure.idle:4.0%}"
    origin_cpu = "" if figure.origin_ms is None else f" | {figure.origin_ms:4.1f}"
    print(
        f"{name:>24} | {figure.rate:6.1f} {figure.rate / pillow.rate:5.2f} "
        f"{figure.rate / turbo.rate:5.2f} | {figure.worker_ms:5.1f} "
        f"{pillow.worker_ms / figure.worker_ms:5.2f} {turbo.worker_ms / figure.worker_ms:5.2f} "
        f"| {figure.cpu_ms:5.1f} {pillow.cpu_ms / figure.cpu_ms:5.2f} |{pss}{idle}{origin_cpu}"
    )


def main() -> None:
    print(f"\n== Throughput: {IMAGES} distinct URLs, quality 50, {os.cpu_count()} cores ==")
    print("targets: end to end >= 1.0 x the plain-Pillow ceiling, >= 0.8 x libjpeg-turbo direct")
    print(
        f"{'':>24} | {'img/s':>6} {'/Pil':>5} {'/tj':>5} | {'ms':>5} {'/Pil':>5} {'/tj':>5} "
        f"| {'ms':>5} {'/Pil':>5} | peak PSS | idle | origin"
    )
    print(
        f"{'':>24} | {'wall time':^18} | {'workers CPU/image':^18} | {'all CPU/img':^11} "
        "| server + workers | cores | ms/img"
    )
    pillow = ceiling(plain_pillow)
    turbo = ceiling(turbo_direct)
    _print("ceiling: plain Pillow", pillow, pillow, turbo)
    _print("ceiling: turbo direct", turbo, pillow, turbo)
    # Every run's outputs stay until the last run is done. On an ext4 without a journal
    # (this bench's machine), a new file's inode skips those deleted in the last seconds
    # to minutes, one inode-table look-up each: deleting a run's 600 outputs made the next
    # run's stores cost ~1 ms of CPU more per image (perf: recently_deleted).
    serves: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="imgbatch-bench-") as kept:
        for delay in DELAYS_MS:
            serve_data, run_data = Path(kept) / f"serve-{delay}", Path(kept) / f"run-{delay}"
            serves.append(serve_rate(delay, serve_data))
            _print(f"serve, {delay} ms origin", serves[-1], pillow, turbo)
            _print(f"run, {delay} ms origin", run_rate(delay, run_data), pillow, turbo)
    again = ceiling(plain_pillow)
    _print("plain Pillow again", again, pillow, turbo)
    print("(drift: the second plain-Pillow ceiling against the first)")
    _print_budget(turbo, serves)


def _print_budget(turbo: Figure, serves: list[Figure]) -> None:
    """What 0.8 x libjpeg-turbo direct leaves above the codec, against what serve spends.

    With every core busy, images/s is cores / CPU per image, so 0.8 x the ceiling's rate
    allows ceiling CPU / 0.8 per image for everything: the codec, the server, the workers'
    downloads, stores and records, and the origin, which shares these cores."""
    allowed = turbo.cpu_ms / 0.8 - turbo.worker_ms
    print(f"0.8 x turbo direct leaves {allowed:.1f} ms of CPU per image above the codec")
    for delay, figure in zip(DELAYS_MS, serves, strict=True):
        origin_ms = figure.origin_ms or 0.0
        above = figure.worker_ms - turbo.worker_ms
        server = figure.cpu_ms - figure.worker_ms
        print(
            f"  serve, {delay} ms origin: {above + server + origin_ms:.1f} ms above it "
            f"(workers {above:.1f}, server {server:.1f}, origin {origin_ms:.1f})"
        )


if __name__ == "__main__":
    main()
