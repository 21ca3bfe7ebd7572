"""4-bit run-length BMPs (BI_RLE4), as in the bmpsuite's g/pal4rle.bmp.

The file is written here by a small RLE4 encoder, with both kinds of run the suite's file
has: encoded runs (one or two alternating colours) and absolute runs of an odd number of
pixels, whose last byte carries a padding nibble. Pillow 11.3 (pinned before) read such a run one
byte short and scrambled the rest of the picture while still "succeeding".
"""

from __future__ import annotations

import struct
from io import BytesIO

from PIL import Image

from imgbatch.imaging import compress
from imgbatch.options import OutputOptions

MAX_PIXELS = 50_000_000
PALETTE = [(16 * i, 255 - 16 * i, (64 + 40 * i) % 256) for i in range(16)]

# One row: encoded runs ("run", count, colour, colour) and absolute runs ("abs", colours).
Segment = tuple[str, int, int, int] | tuple[str, list[int]]


def row_segments(y: int) -> list[Segment]:
    shift = y % 16
    return [
        ("run", 6, shift, shift),
        ("abs", [(shift + k) % 16 for k in (1, 3, 5, 7, 9)]),  # 5 pixels: odd
        ("run", 4, (shift + 2) % 16, (shift + 2) % 16),
        ("abs", [(shift + k) % 16 for k in (4, 11, 6)]),  # 3 pixels: odd
        ("run", 8, (shift + 8) % 16, (shift + 13) % 16),  # two alternating colours
        ("abs", [(shift + k) % 16 for k in (15, 1, 14, 2, 13, 3, 12)]),  # 7 pixels
        ("run", 4, (shift + 5) % 16, (shift + 5) % 16),
    ]


def pixels_of(segments: list[Segment]) -> list[int]:
    row: list[int] = []
    for segment in segments:
        if segment[0] == "run":
            _, count, first, second = segment
            row += [first if k % 2 == 0 else second for k in range(count)]
        else:
            row += segment[1]
    return row


def encode_row(segments: list[Segment]) -> bytes:
    out = bytearray()
    for segment in segments:
        if segment[0] == "run":
            _, count, first, second = segment
            out += bytes([count, first << 4 | second])
        else:
            colours = segment[1]
            packed = bytearray()
            for k in range(0, len(colours), 2):
                low = colours[k + 1] if k + 1 < len(colours) else 0  # the padding nibble
                packed.append(colours[k] << 4 | low)
            if len(packed) % 2:
                packed.append(0)  # absolute runs end on a 16-bit boundary
            out += bytes([0, len(colours)]) + packed
    return bytes(out)


def rle4_bmp(height: int = 12) -> tuple[bytes, Image.Image]:
    """The BI_RLE4 file and the picture it holds (as a palette image)."""
    rows = [row_segments(y) for y in range(height)]
    width = len(pixels_of(rows[0]))
    data = bytearray()
    for y in reversed(range(height)):  # BMP rows go bottom-up
        data += encode_row(rows[y])
        data += b"\x00\x00" if y else b"\x00\x01"  # end of line; end of bitmap
    palette = b"".join(bytes([b, g, r, 0]) for r, g, b in PALETTE)
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 4, 2, len(data), 2835, 2835, 16, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    expected = Image.new("P", (width, height))
    expected.putpalette([channel for colour in PALETTE for channel in colour])
    expected.putdata([index for y in range(height) for index in pixels_of(rows[y])])
    return header + info + palette + bytes(data), expected


def test_the_rle4_fixture_has_odd_absolute_runs() -> None:
    data, expected = rle4_bmp()
    assert data[30:34] == struct.pack("<I", 2)  # biCompression = BI_RLE4
    assert expected.size == (37, 12)


def test_an_rle4_bmp_decodes_to_its_picture() -> None:
    data, expected = rle4_bmp()
    with Image.open(BytesIO(data)) as decoded:
        assert decoded.format == "BMP"
        assert list(decoded.convert("RGB").getdata()) == list(expected.convert("RGB").getdata())


def test_an_rle4_bmp_compresses_like_the_same_picture_stored_plainly() -> None:
    data, expected = rle4_bmp()
    plain = BytesIO()
    expected.save(plain, "BMP")  # uncompressed 4/8-bit BMP of the same pixels
    from_rle = compress(data, options=OutputOptions(quality=90), max_pixels=MAX_PIXELS)
    from_plain = compress(
        plain.getvalue(), options=OutputOptions(quality=90), max_pixels=MAX_PIXELS
    )
    assert Image.open(BytesIO(from_rle.data)).size == (37, 12)
    assert from_rle.data == from_plain.data
