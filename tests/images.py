"""Factories of generated images, one per edge case the image pipeline must handle.

Everything is made here from nothing, so a test states the case it checks in a line.
"""

from __future__ import annotations

import re
import struct
import zlib
from io import BytesIO
from typing import Any

from PIL import Image, ImageCms

WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def photo_like(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A smooth colour gradient: every pixel distinct, compresses like a photo."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)]
    )
    return image.convert(mode) if mode != "RGB" else image


def marked(
    size: tuple[int, int] = (64, 32), mark: tuple[int, int, int] = (255, 0, 0)
) -> Image.Image:
    """White, with a 16x16 block of ``mark`` in the stored top-left corner."""
    image = Image.new("RGB", size, WHITE)
    image.paste(mark, (0, 0, 16, 16))
    return image


def jpeg_with_exif(image: Image.Image, **tags: Any) -> bytes:
    """A JPEG whose EXIF carries ``tags`` (names from PIL.ExifTags.Base, or "GPSInfo")."""
    exif = Image.Exif()
    for name, value in tags.items():
        exif[_exif_tag(name)] = value
    return encode(image, "JPEG", quality=95, exif=exif)


def _exif_tag(name: str) -> int:
    from PIL import ExifTags

    if name == "GPSInfo":
        return int(ExifTags.IFD.GPSInfo)
    return int(ExifTags.Base[name])


def transparent_png(mode: str) -> bytes:
    """Fully transparent pixels on the left half, opaque black on the right.

    ``mode`` is "RGBA", "LA" or "P" (a palette with a transparent entry, tRNS). (No format
    a browser shows decodes to Pillow's "PA".)"""
    width, height = 16, 8
    if mode == "P":
        image = Image.new("P", (width, height), 0)
        image.putpalette([0, 0, 0, 0, 0, 0])  # entry 0 black, transparent; entry 1 black
        image.paste(1, (width // 2, 0, width, height))
        return encode(image, "PNG", transparency=0)
    opaque = {"RGBA": (0, 0, 0, 255), "LA": (0, 255)}[mode]
    clear = {"RGBA": (0, 0, 0, 0), "LA": (0, 0)}[mode]
    image = Image.new(mode, (width, height), clear)
    image.paste(opaque, (width // 2, 0, width, height))
    return encode(image, "PNG")


def bands(mode: str, values: list[float], width: int = 16) -> Image.Image:
    """Vertical bands ``width`` pixels wide, one per value, 16 pixels high."""
    image = Image.new(mode, (width * len(values), 16))
    row = [value for value in values for _ in range(width)]
    image.putdata(row * 16)
    return image


def gradient16(fmt: str = "PNG", mode: str = "I;16") -> bytes:
    """16-bit greyscale in 17 bands ramping 0..65535 left to right, stored in ``mode``
    ("I;16" little-endian, "I;16B" big-endian, "I" 32-bit) as ``fmt``."""
    return encode(bands(mode, [step * 4096 - (step == 16) for step in range(17)]), fmt)


def float_tiff(values: list[float]) -> bytes:
    """A 32-bit float greyscale TIFF with one band per value."""
    return encode(bands("F", values), "TIFF")


def animated(fmt: str, colours: list[tuple[int, int, int]], **options: Any) -> bytes:
    """An animation whose frames are solid ``colours`` in order."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in colours]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **options)


def cmyk_jpeg(ink: tuple[int, int, int, int], icc_profile: bytes | None = None) -> bytes:
    """A solid CMYK JPEG. Pillow writes CMYK the Adobe way: an APP14 "Adobe" marker and
    inverted values (0 = full ink), which is what Photoshop produces."""
    image = Image.new("CMYK", (16, 16), ink)
    return encode(image, "JPEG", quality=95, icc_profile=icc_profile)


def without_adobe_marker(jpeg: bytes) -> bytes:
    """The same JPEG without its APP14 segment: readers then take the values as stored."""
    found = re.search(rb"\xff\xee(..)Adobe", jpeg, re.S)  # APP14, its 2-byte length, "Adobe"
    assert found, "no Adobe APP14 segment"
    length = int.from_bytes(found.group(1), "big")
    return jpeg[: found.start()] + jpeg[found.start() + 2 + length :]


def stored_cmyk(jpeg: bytes) -> tuple[int, ...]:
    """The first pixel's samples as stored in the file, without Pillow's Adobe inversion."""
    image = Image.open(BytesIO(jpeg))
    image.tile = [tile._replace(args=("CMYK", "")) for tile in image.tile]
    image.load()
    pixel = image.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel


# Printing inks as sRGB, for the test CMYK profile: cyan ink is not (0, 255, 255).
INKS = {"C": (0, 158, 224), "M": (236, 0, 140), "Y": (255, 241, 0), "K": (35, 31, 32)}


def cmyk_icc_profile() -> bytes:
    """A minimal, valid ICC v2 CMYK output profile (A2B0: CMYK -> Lab).

    Each corner of its 2x2x2x2 colour table is the product of the inks present (INKS),
    so full cyan maps to INKS["C"] exactly. No CMYK profile ships with the test system,
    and this is enough for LittleCMS to convert with it."""
    lab = _lab_of_corners()
    tags = [
        (b"desc", _desc_tag("imgbatch test CMYK")),
        (b"wtpt", b"XYZ \0\0\0\0" + struct.pack(">3i", *map(_s15, (0.9642, 1.0, 0.8249)))),
        (b"cprt", b"text\0\0\0\0public domain\0"),
        (b"A2B0", _lut8(lab)),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, blobs = b"", b""
    for signature, blob in tags:
        padded = blob + b"\0" * (-len(blob) % 4)
        entries += signature + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += padded
    size = 128 + table_size + len(blobs)
    header = (
        struct.pack(">I4sI", size, b"\0\0\0\0", 0x02100000)
        + b"prtrCMYKLab "
        + b"\0" * 12  # date
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent
        + struct.pack(">3i", *map(_s15, (0.9642, 1.0, 0.8249)))
        + b"\0" * 48  # creator, profile ID, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + blobs


def _s15(value: float) -> int:
    return round(value * 65536)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67  # no ScriptCode description
    )


def _lab_of_corners() -> list[tuple[int, int, int]]:
    """Lab (8-bit ICC encoding) of the 16 ink combinations, C slowest, K fastest."""
    corners = Image.new("RGB", (16, 1))
    pixels = []
    for index in range(16):
        present = [ink for bit, ink in zip((8, 4, 2, 1), "CMYK", strict=True) if index & bit]
        colour = [255.0, 255.0, 255.0]
        for ink in present:
            colour = [c * i / 255 for c, i in zip(colour, INKS[ink], strict=True)]
        pixels.append(tuple(round(c) for c in colour))
    corners.putdata(pixels)
    to_lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    lab = ImageCms.applyTransform(corners, to_lab)
    assert lab is not None
    return list(lab.getdata())


def _lut8(lab: list[tuple[int, int, int]]) -> bytes:
    identity_matrix = struct.pack(">9i", *(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1)))
    identity_curve = bytes(range(256))
    return (
        b"mft1\0\0\0\0"
        + bytes([4, 3, 2, 0])  # 4 inputs, 3 outputs, 2 grid points, padding
        + identity_matrix
        + identity_curve * 4
        + b"".join(bytes(corner) for corner in lab)
        + identity_curve * 3
    )


def png_header_bomb(width: int, height: int) -> bytes:
    """A valid-looking RGB PNG claiming ``width`` x ``height`` with almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\0" * (1 + 3 * min(width, 1024)))
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def ico_around(png: bytes, claimed: int = 16) -> bytes:
    """An ICO whose directory claims a ``claimed``-pixel square icon, holding ``png``."""
    directory = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", claimed, claimed, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png


def eps() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
        b"newpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"
    )


def pdf() -> bytes:
    return encode(Image.new("RGB", (10, 10), WHITE), "PDF")


def psd_header() -> bytes:
    """The start of a Photoshop file: signature, version 1, 3 channels, 10x10, 8-bit RGB."""
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 10, 10, 8, 3) + b"\0" * 64


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<!-- logo -->\n"
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10" fill="red"/></svg>\n'
    )


def html() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>Not found</title></head><body>404</body></html>"


def heic_header() -> bytes:
    """The ftyp box an iPhone HEIC starts with (major brand mif1, compatible heic)."""
    return struct.pack(">I", 24) + b"ftypmif1" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 32
