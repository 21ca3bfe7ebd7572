"""The fast path of ``imaging.compress``: a plain JPEG re-encoded by libjpeg-turbo directly.

Most inputs are 8-bit colour or greyscale JPEGs with nothing to undo. For those, Pillow
spends about a third of its time on its own pixel layout (4 bytes a pixel, packed and
unpacked on each side of libjpeg); simplejpeg hands libjpeg-turbo's buffers straight to a
numpy array and back, and releases the GIL while it works.

The fast path takes only what it can do exactly as the Pillow path does (the same size,
the same quantisation tables at the same quality, 4:2:0 baseline, pixels within rounding):

- the markers up to the first scan say: baseline, extended or progressive Huffman coding,
  8-bit samples, one component (grey) or three that libjpeg reads as YCbCr;
- no EXIF or XMP orientation other than "as stored" (Pillow's path would rotate);
- not a multi-picture file (Pillow names those "MPO");
- within the pixel cap.

An ICC profile that describes the output's colour space is copied into APP2 segments
exactly as Pillow writes them. Everything else, and any error on the way (damaged or
truncated data included), returns ``None``: the caller then takes the Pillow path, which
gives the answer or the error it always gave.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

_SOI = b"\xff\xd8"
# Start-of-frame markers the fast path takes: baseline, extended sequential, progressive
# (all Huffman). Lossless, hierarchical and arithmetic-coded frames go to Pillow.
_FAST_FRAMES = {0xC0, 0xC1, 0xC2}
_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOS, _APP0, _APP1, _APP2 = 0xDA, 0xE0, 0xE1, 0xE2
_EXIF = b"Exif\0\0"
_XMP = b"http://ns.adobe.com/xap/1.0/\0"
_ICC = b"ICC_PROFILE\0"
_MPF = b"MPF\0"
_ORIENTATION_TAG = 0x0112
# What fits in one APP2 segment after its length and the 14 bytes of ICC header (Pillow's split).
_ICC_CHUNK = 65533 - 14


@dataclass(frozen=True)
class FastJpeg:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    components: int
    icc: bytes | None


def reencode(
    data: bytes,
    *,
    quality: int,
    max_pixels: int,
    icc_space: Callable[[bytes], str | None],
) -> FastJpeg | None:
    """``data`` re-encoded at ``quality``, or ``None`` when the Pillow path must do it.

    ``icc_space`` names the colour space an ICC profile describes ("RGB", "GRAY"...), as the
    Pillow path decides whether to keep it."""
    try:
        simplejpeg = _codec()
        header = _read_header(data)
        if header is None or header.width * header.height > max_pixels:
            return None
        grey = header.components == 1
        if simplejpeg.decode_jpeg_header(data)[2] != ("Gray" if grey else "YCbCr"):
            return None  # e.g. an RGB- or CMYK-coded file: Pillow's path
        pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB", strict=True)
        height, width = pixels.shape[:2]
        if (width, height) != (header.width, header.height):
            return None
        output = simplejpeg.encode_jpeg(
            pixels,
            quality=quality,
            colorspace="GRAY" if grey else "RGB",
            colorsubsampling="Gray" if grey else "420",
        )
        icc = header.icc
        if icc and icc_space(icc) == ("GRAY" if grey else "RGB"):
            output = _with_icc(output, icc)
        return FastJpeg(output, width, height)
    except Exception as exc:  # damaged data included: the Pillow path names the error
        log.debug("JPEG fast path declined: %s", exc)
        return None


def _codec() -> ModuleType:
    """simplejpeg, imported on first use: it brings numpy, which the API and CLI
    processes (they import this module but never compress) need not load. The worker
    processes' fork server imports it ahead (``dispatch.local_pool.worker_context``)."""
    import simplejpeg  # type: ignore[import-untyped]  # ships no py.typed

    codec: ModuleType = simplejpeg
    return codec


def _read_header(data: bytes) -> _Header | None:
    """Walk the markers up to the first scan; ``None`` for anything but the plain case."""
    if not data.startswith(_SOI):
        return None
    frame: tuple[int, int, int] | None = None
    icc_chunks: list[bytes] = []
    exif_seen = False
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return None
        if marker == _SOS:
            break
        if marker in _FAST_FRAMES:
            if frame is not None or len(segment) < 6 or segment[0] != 8:
                return None  # a second frame, or not 8-bit samples
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            frame = (width, height, segment[5])
        elif marker in _OTHER_FRAMES:
            return None
        elif marker == _APP1 and segment.startswith(_EXIF):
            if exif_seen or _orientation(segment[len(_EXIF) :]) != 1:
                return None
            exif_seen = True
        elif marker == _APP1 and segment.startswith(_XMP) and b"Orientation" in segment:
            return None  # Pillow reads tiff:Orientation from XMP too
        elif marker == _APP2 and segment.startswith(_MPF):
            return None
        elif marker == _APP2 and segment.startswith(_ICC) and frame is None:
            icc_chunks.append(segment)  # Pillow assembles the profile at the frame header
        position += 2 + length
    else:
        return None  # no scan
    if frame is None or frame[2] not in (1, 3) or min(frame[:2]) < 1:
        return None
    return _Header(*frame, icc=_icc_profile(icc_chunks))


def _orientation(tiff: bytes) -> int | None:
    """The IFD0 orientation of an EXIF block (1 when it has none), ``None`` when unsure."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None

    def number(offset: int, size: int) -> int:
        if offset + size > len(tiff):
            raise ValueError("EXIF block ends early")
        return int.from_bytes(tiff[offset : offset + size], order)  # type: ignore[arg-type]

    try:
        ifd = number(4, 4)
        for index in range(number(ifd, 2)):
            entry = ifd + 2 + 12 * index
            if number(entry, 2) == _ORIENTATION_TAG:
                return number(entry + 8, 2) if number(entry + 2, 2) == 3 else None  # SHORT
    except ValueError:
        return None
    return 1


def _icc_profile(chunks: list[bytes]) -> bytes | None:
    """The profile from its APP2 chunks, as Pillow's reader assembles it."""
    if not chunks:
        return None
    chunks.sort()  # by sequence number
    if len(chunks[0]) < 14 or chunks[0][13] != len(chunks):
        return None  # the wrong number of pieces: Pillow drops the profile
    return b"".join(chunk[14:] for chunk in chunks)


def _with_icc(jpeg: bytes, icc: bytes) -> bytes:
    """Insert the profile after the JFIF segment, in Pillow's chunks and position."""
    if jpeg[2:4] != b"\xff\xe0":
        raise ValueError("encoder output does not start with a JFIF segment")
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    pieces = [icc[start : start + _ICC_CHUNK] for start in range(0, len(icc), _ICC_CHUNK)]
    segments = b"".join(
        b"\xff\xe2"
        + (2 + 14 + len(piece)).to_bytes(2, "big")
        + _ICC
        + bytes((number, len(pieces)))
        + piece
        for number, piece in enumerate(pieces, start=1)
    )
    return jpeg[:after_app0] + segments + jpeg[after_app0:]
