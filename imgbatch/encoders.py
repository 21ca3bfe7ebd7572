"""The encode step: one function per output format, all through Pillow's own codecs.

Every encoder gets an image already in the mode its format holds (see
``imaging._to_output_mode``) and the ICC profile only when it describes that mode's
colour space; every other piece of metadata is dropped (Pillow carries some over from
``info``, a JPEG comment for one; EXIF, with its GPS and camera fields, is never passed).

WebP and AVIF come with Pillow's wheels (libwebp, libavif with libaom): no system package.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

from PIL import Image

from imgbatch.options import OutputFormat, OutputOptions

DEFAULT_AVIF_SPEED = 10
# libwebp's effort, 0..6; its own default. On the corpus at q76 (encode CPU time): method 6
# is 2% smaller for 1.8x the time, method 2 is 6% larger for 0.44x.
WEBP_METHOD = 4


def encode(
    image: Image.Image,
    options: OutputOptions,
    icc: bytes | None,
    *,
    avif_speed: int = DEFAULT_AVIF_SPEED,
) -> bytes:
    """``image`` encoded per ``options`` (format and quality; the size is already set)."""
    image.info = {}
    buffer = BytesIO()
    ENCODERS[options.format](image, buffer, options.quality, icc, avif_speed)
    return buffer.getvalue()


def _jpeg(image: Image.Image, out: BytesIO, quality: int, icc: bytes | None, _: int) -> None:
    # Baseline, default 4:2:0 chroma subsampling, no second Huffman pass: fast to make and
    # viewable everywhere.
    image.save(out, "JPEG", quality=quality, optimize=False, icc_profile=icc)


def _webp(image: Image.Image, out: BytesIO, quality: int, icc: bytes | None, _: int) -> None:
    # Lossy (VP8), alpha kept when the image has it; ``exact`` off lets libwebp change the
    # colour of fully transparent pixels, which nobody sees, for smaller files.
    image.save(out, "WEBP", quality=quality, method=WEBP_METHOD, icc_profile=icc or b"")


def _avif(image: Image.Image, out: BytesIO, quality: int, icc: bytes | None, speed: int) -> None:
    # One encoder thread: a worker process per core already keeps every core busy, and
    # libavif's default (a thread per core) would have the processes fight over them.
    image.save(
        out,
        "AVIF",
        quality=quality,
        speed=speed,
        subsampling="4:2:0",
        max_threads=1,
        icc_profile=icc or b"",
    )


Encoder = Callable[[Image.Image, BytesIO, int, "bytes | None", int], None]
ENCODERS: dict[OutputFormat, Encoder] = {"jpeg": _jpeg, "webp": _webp, "avif": _avif}
