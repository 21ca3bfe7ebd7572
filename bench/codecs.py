"""The CPU stage alone: decode + re-encode at quality 50 on the photo corpus.

First CPU time per image (user + system of this process, so other work on the machine
does not count), the codecs interleaved round by round:

- Pillow plain: open, convert to RGB, save: the ceiling the throughput targets name;
- the Pillow path of ``imaging.compress`` (its libjpeg-turbo fast path switched off);
- ``imaging.compress`` as it runs: plain JPEGs take the fast path (``imaging_turbo``);
- libjpeg-turbo direct: simplejpeg's decode and encode and nothing else, the ceiling of
  any JPEG path from Python.

Then images/s of each in a process pool, one process per core, and libvips (pyvips), the
option not taken, for the record.
"""

from __future__ import annotations

import io
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import simplejpeg  # type: ignore[import-untyped]
from PIL import Image

from bench.common import photo_names
from bench.origin import PHOTOS
from imgbatch import imaging_turbo
from imgbatch.imaging import compress
from imgbatch.options import OutputOptions

ROUNDS = 8
JPEG_Q50 = OutputOptions(quality=50)
MAX_PIXELS = 50_000_000


def plain_pillow(data: bytes) -> int:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=50)
    return len(buffer.getvalue())


def compress_pillow_path(data: bytes) -> int:
    saved = imaging_turbo.reencode
    imaging_turbo.reencode = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        return len(compress(data, options=JPEG_Q50, max_pixels=MAX_PIXELS).data)
    finally:
        imaging_turbo.reencode = saved


def compress_as_run(data: bytes) -> int:
    return len(compress(data, options=JPEG_Q50, max_pixels=MAX_PIXELS).data)


def turbo_direct(data: bytes) -> int:
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB")
    return len(simplejpeg.encode_jpeg(pixels, quality=50, colorspace="RGB", colorsubsampling="420"))


def vips(data: bytes) -> int:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one core per process, like Pillow
    import pyvips  # type: ignore[import-untyped]

    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    image = image.autorot()
    return len(image.jpegsave_buffer(Q=50, strip=True))


CODECS: dict[str, Callable[[bytes], int]] = {
    "Pillow plain": plain_pillow,
    "compress, Pillow path": compress_pillow_path,
    "compress (fast path)": compress_as_run,
    "libjpeg-turbo direct": turbo_direct,
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_per_image(rounds: int = ROUNDS) -> dict[str, float]:
    """Milliseconds of CPU per image for each codec, interleaved round by round."""
    payloads = [(PHOTOS / name).read_bytes() for name in photo_names()]
    totals = dict.fromkeys(CODECS, 0.0)
    for work in CODECS.values():
        work(payloads[0])  # warm up
    for _ in range(rounds):
        for name, work in CODECS.items():
            started = cpu_seconds()
            for data in payloads:
                work(data)
            totals[name] += cpu_seconds() - started
    return {name: total * 1000 / (rounds * len(payloads)) for name, total in totals.items()}


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
    count = len(photo_names()) * ROUNDS
    print(f"\n== Codecs: decode + encode q50, {count} images, CPU time per image ==")
    figures = cpu_per_image()
    plain = figures["Pillow plain"]
    for name, ms in figures.items():
        print(f"{name:>22}: {ms:5.1f} ms CPU/image  {plain / ms:4.2f}x Pillow plain")
    print(f"== Codecs: images/s, 1 process and {cores} ==")
    for name, work in (*CODECS.items(), ("pyvips", vips)):
        one, share = rate(work, 1)
        many, _ = rate(work, cores)
        print(
            f"{name:>22}: {one:6.1f} images/s on 1 process, {many:6.1f} on {cores}; "
            f"output {share:.0%} of input bytes"
        )


if __name__ == "__main__":
    main()
