"""Output formats (SPEC §10): what WebP and AVIF cost and save against JPEG, in one run.

For each format at its default quality (IMGBATCH_QUALITY 50 mapped to the format's scale,
``imgbatch.options.equivalent_quality``), on the photo corpus:

- images/s of ``imgbatch.imaging.compress`` per core (from the CPU time each image takes
  in a pool of one process per core, the formats interleaved: on this shared machine wall
  time moves with other work, CPU time much less), and its ratio to the JPEG path;
- mean output bytes, as a ratio to JPEG q50;
- mean SSIM of the output against the input (luma, scikit-image).

Then AVIF at several speeds (``IMGBATCH_AVIF_SPEED``), the cost of ``max_size``, and the
published mapping JPEG q50 ≈ WebP 55 ≈ AVIF 48 checked by SSIM.

``python -m bench formats --calibrate`` prints the SSIM-matched quality of WebP and AVIF
for JPEG qualities 30, 50, 70 and 85: the table ``EQUIVALENT_QUALITY`` is made from it
(``--calibrate=avif`` for one format).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from io import BytesIO
from itertools import pairwise

import numpy as np
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity

from bench.common import photo_names
from bench.origin import PHOTOS
from imgbatch.encoders import DEFAULT_AVIF_SPEED
from imgbatch.imaging import compress
from imgbatch.options import FORMATS, OutputFormat, OutputOptions, equivalent_quality

ROUNDS = 2  # the corpus this many times per throughput figure
MAX_PIXELS = 50_000_000
JPEG_ANCHORS = (30, 50, 70, 85)
# Candidate qualities for the calibration: dense where the anchors land.
CANDIDATES = (20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90)


def _encode(data: bytes, options: OutputOptions, speed: int = DEFAULT_AVIF_SPEED) -> bytes:
    return compress(data, options=options, max_pixels=MAX_PIXELS, avif_speed=speed).data


def _cpu_seconds(task: tuple[bytes, OutputOptions, int]) -> float:
    data, options, speed = task
    started = time.process_time()
    _encode(data, options, speed)
    return time.process_time() - started


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


def _ssim_and_size(name: str, options: OutputOptions, speed: int) -> tuple[float, int]:
    """SSIM (luma) of ``name`` encoded per ``options`` against the input, and its bytes."""
    data = (PHOTOS / name).read_bytes()
    reference = _luma(ImageOps.exif_transpose(Image.open(BytesIO(data))))
    encoded = _encode(data, options, speed)
    output = _luma(Image.open(BytesIO(encoded)))
    return float(structural_similarity(reference, output, data_range=255)), len(encoded)


def mean_ssim_and_bytes(
    pool: ProcessPoolExecutor, options: OutputOptions, speed: int = DEFAULT_AVIF_SPEED
) -> tuple[float, float]:
    results = list(pool.map(partial(_ssim_and_size, options=options, speed=speed), photo_names()))
    return float(np.mean([s for s, _ in results])), float(np.mean([b for _, b in results]))


def images_per_second(
    pool: ProcessPoolExecutor, variants: list[tuple[OutputOptions, int]]
) -> list[float]:
    """Images/s per core of each (options, AVIF speed), measured interleaved."""
    payloads = [(PHOTOS / name).read_bytes() for name in photo_names()] * ROUNDS
    tasks = [(data, options, speed) for data in payloads for options, speed in variants]
    list(pool.map(_cpu_seconds, tasks[: len(variants)]))  # warm up
    seconds = list(pool.map(_cpu_seconds, tasks))
    per_variant = [sum(seconds[i :: len(variants)]) for i in range(len(variants))]
    return [len(payloads) / total for total in per_variant]


def default_options(output_format: OutputFormat, max_size: int | None = None) -> OutputOptions:
    return OutputOptions(
        format=output_format, quality=equivalent_quality(50, output_format), max_size=max_size
    )


def formats_table(pool: ProcessPoolExecutor) -> None:
    print("format  quality  images/s/core  vs JPEG  mean bytes  vs JPEG q50  mean SSIM")
    jpeg_rate = jpeg_bytes = 0.0
    chosen = [default_options(output_format) for output_format in FORMATS]
    rates = images_per_second(pool, [(options, DEFAULT_AVIF_SPEED) for options in chosen])
    for output_format, options, rate in zip(FORMATS, chosen, rates, strict=True):
        ssim, size = mean_ssim_and_bytes(pool, options)
        if output_format == "jpeg":
            jpeg_rate, jpeg_bytes = rate, size
        print(
            f"{output_format:<6}  {options.quality:>7}  {rate:13.1f}  {rate / jpeg_rate:6.2f}x"
            f"  {size:10,.0f}  {size / jpeg_bytes:10.2f}x  {ssim:9.4f}"
        )


def avif_speeds(pool: ProcessPoolExecutor, speeds: Iterable[int] = (6, 8, 10)) -> None:
    options = default_options("avif")
    print(f"\nAVIF q{options.quality} by IMGBATCH_AVIF_SPEED (default {DEFAULT_AVIF_SPEED}):")
    speeds = list(speeds)
    rates = images_per_second(pool, [(options, speed) for speed in speeds])
    for speed, rate in zip(speeds, rates, strict=True):
        ssim, size = mean_ssim_and_bytes(pool, options, speed)
        print(
            f"  speed {speed:>2}: {rate:6.1f} images/s/core, {size:10,.0f} bytes, SSIM {ssim:.4f}"
        )


def max_size_cost(pool: ProcessPoolExecutor) -> None:
    print("\nmax_size (each format at its default quality), images/s/core:")
    sizes = (None, 1024, 512)
    for output_format in FORMATS:
        variants = [(default_options(output_format, size), DEFAULT_AVIF_SPEED) for size in sizes]
        full, *rates = images_per_second(pool, variants)
        cells = [f"full size {full:6.1f}"]
        cells += [
            f"{size} {rate:6.1f} ({rate / full:.2f}x)"
            for size, rate in zip(sizes[1:], rates, strict=True)
        ]
        print(f"  {output_format:<5} " + ", ".join(cells))


def _resize_pair(name: str, max_size: int) -> tuple[float, float, float]:
    """Seconds of a pure Lanczos resize and of the draft + reducing_gap path (decode
    included in both), and the SSIM between their results."""
    from imgbatch.resize import REDUCING_GAP, draft_size, fitted_size

    data = (PHOTOS / name).read_bytes()
    started = time.process_time()
    image = Image.open(BytesIO(data))
    target = fitted_size(image.size, max_size) or image.size
    pure = image.convert("RGB").resize(target, Image.Resampling.LANCZOS)
    pure_seconds = time.process_time() - started
    started = time.process_time()
    image = Image.open(BytesIO(data))
    image.draft("RGB", draft_size(image.size, max_size))
    fast = image.convert("RGB").resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    fast_seconds = time.process_time() - started
    similarity = float(structural_similarity(_luma(pure), _luma(fast), data_range=255))
    return pure_seconds, fast_seconds, similarity


def resize_filters() -> None:
    print("\nresize to 512 px, decode included (one process, mean over the corpus):")
    results = [_resize_pair(name, 512) for name in photo_names() for _ in range(ROUNDS)]
    pure, fast, similarity = (float(np.mean(column)) for column in zip(*results, strict=True))
    print(
        f"  pure Lanczos {pure * 1000:.1f} ms, draft + reducing_gap {fast * 1000:.1f} ms "
        f"({pure / fast:.1f}x faster); SSIM between the two {similarity:.4f}"
    )


def published_mapping(pool: ProcessPoolExecutor) -> None:
    print("\npublished mapping JPEG q50 ≈ WebP 55 ≈ AVIF 48, by SSIM:")
    for output_format, quality in (("jpeg", 50), ("webp", 55), ("avif", 48)):
        ssim, size = mean_ssim_and_bytes(pool, OutputOptions(format=output_format, quality=quality))
        print(f"  {output_format:<5} q{quality}: SSIM {ssim:.4f}, {size:10,.0f} bytes")


def calibrate(pool: ProcessPoolExecutor) -> None:
    """The SSIM-matched WebP and AVIF quality for each JPEG anchor quality."""
    targets = {
        q: mean_ssim_and_bytes(pool, OutputOptions(format="jpeg", quality=q))[0]
        for q in JPEG_ANCHORS
    }
    print("JPEG quality -> SSIM: " + ", ".join(f"q{q} {s:.4f}" for q, s in targets.items()))
    chosen = [arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--calibrate=")]
    for output_format in chosen or ["webp", "avif"]:
        curve = [
            (q, mean_ssim_and_bytes(pool, OutputOptions(format=output_format, quality=q))[0])
            for q in CANDIDATES
        ]
        print(f"{output_format} SSIM by quality: " + ", ".join(f"q{q} {s:.4f}" for q, s in curve))
        matched = {jpeg_q: _matching_quality(curve, s) for jpeg_q, s in targets.items()}
        print(f"{output_format} equivalents: {matched}")


def _matching_quality(curve: list[tuple[int, float]], target: float) -> int:
    """The quality at which the (rising) SSIM curve reaches ``target``, interpolated."""
    for (low_q, low_s), (high_q, high_s) in pairwise(curve):
        if low_s <= target <= high_s:
            share = (target - low_s) / (high_s - low_s) if high_s > low_s else 0.0
            return round(low_q + share * (high_q - low_q))
    return curve[0][0] if target < curve[0][1] else curve[-1][0]


def main() -> None:
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        if any(arg.startswith("--calibrate") for arg in sys.argv):
            calibrate(pool)
            return
        print(f"\n== Formats: compress at each default quality, {cores} processes ==")
        formats_table(pool)
        avif_speeds(pool)
        max_size_cost(pool)
        published_mapping(pool)
    resize_filters()


if __name__ == "__main__":
    main()
