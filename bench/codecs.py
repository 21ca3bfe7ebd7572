"""Pillow or libvips for the CPU stage? Decode + encode at quality 50, both in a process
pool of one process per core, on the photo corpus. Pillow is what ``imgbatch.imaging``
uses; this keeps the figures of the option we did not take."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from bench.common import photo_names
from bench.origin import PHOTOS
from imgbatch.imaging import compress
from imgbatch.options import OutputOptions

ROUNDS = 8


def pillow(data: bytes) -> int:
    return len(compress(data, options=OutputOptions(quality=50), max_pixels=50_000_000).data)


def vips(data: bytes) -> int:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one core per process, like Pillow
    import pyvips  # type: ignore[import-untyped]

    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    image = image.autorot()
    return len(image.jpegsave_buffer(Q=50, strip=True))


def rate(work: Callable[[bytes], int], processes: int) -> tuple[float, float]:
    """Images/s and the output's share of the input bytes."""
    payloads = [(PHOTOS / name).read_bytes() for name in photo_names()] * ROUNDS
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(work, payloads[: processes * 2]))  # warm up
        started = time.perf_counter()
        sizes = list(pool.map(work, payloads, chunksize=2))
        elapsed = time.perf_counter() - started
    return len(payloads) / elapsed, sum(sizes) / sum(map(len, payloads))


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"\n== Codecs: decode + encode q50, {len(photo_names()) * ROUNDS} images ==")
    for name, work in (("Pillow", pillow), ("pyvips", vips)):
        one, share = rate(partial(work), 1)
        many, _ = rate(partial(work), cores)
        print(
            f"{name:>7}: {one:6.1f} images/s on 1 process, {many:6.1f} on {cores}; "
            f"output {share:.0%} of input bytes"
        )


if __name__ == "__main__":
    main()
