"""Decode any raster image a browser shows and re-encode it per the request's options.

``compress`` is pure (bytes in, bytes out) so it can run in worker processes: the
embedded mode's process pool, a Celery prefork child, or threads of either. It keeps
no state of its own; the only globals it touches are Pillow's (``MAX_IMAGE_PIXELS``,
``LOAD_TRUNCATED_IMAGES``), set to the same values on every call.

Plain 8-bit JPEGs (most inputs) take ``imaging_turbo``'s libjpeg-turbo fast path, which
gives the same output to rounding; everything else, and anything it declines, comes here.

The pipeline, one step per function:

- ``_open``: the type is decided from the bytes. Only the formats in ``ALLOWED_FORMATS``
  are handed to Pillow, so PostScript, PDF, PSD and the like are never parsed; SVG,
  HEIF/HEIC, JPEG XL and PDF are recognised here and refused (SVG is a vector format:
  ``unsupported_format``, not ``not_an_image``). The pixel cap is checked on the header,
  before any pixel is decoded.
- ``_decode``: the first frame of an animation, strictly (a truncated file is an error,
  never a half-grey picture), then the EXIF orientation. A JPEG that ``max_size`` will
  shrink is decoded at a reduced scale (``resize.draft_size``).
- ``_to_output_mode``: for JPEG, 8-bit RGB or L with alpha flattened onto white; for
  WebP and AVIF, 8-bit RGB, or RGBA when the image has transparency (kept: both formats
  hold it). CMYK goes through its ICC profile to sRGB when it has one (Pillow's JPEG reader
  already undoes Adobe's inverted CMYK); 16-bit and float pixels are scaled, not clipped.
- ``resize.fit``: scaled down to ``max_size`` (never up), keeping the aspect ratio.
- ``encoders.encode``: the format at the requested quality, with the ICC profile when it
  describes the output's colour space; every other piece of metadata is dropped.

Pillow's errors are mapped to ``ImageError`` codes in one place, ``_decode_failure``.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError, features

from imgbatch import imaging_turbo
from imgbatch.encoders import DEFAULT_AVIF_SPEED, encode
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.options import OutputFormat, OutputOptions
from imgbatch.resize import draft_size, fit

log = logging.getLogger(__name__)

Image.init()

# Raster formats browsers show that this Pillow can read. ICO and AVIF are shown by every
# current browser; JPEG includes MPO (multi-picture JPEG from cameras: its first picture).
ALLOWED_FORMATS: tuple[str, ...] = tuple(
    name
    for name in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "AVIF")
    if name in Image.OPEN and (name not in ("WEBP", "AVIF") or features.check(name.lower()))
)

_ACCEPTED = "JPEG, PNG, WebP, GIF, BMP, TIFF, ICO or AVIF"
# Friendlier names for the formats people most often send by mistake.
_FORMAT_NAMES = {"EPS": "PostScript (EPS)", "PSD": "Photoshop (PSD)", "JPEG2000": "JPEG 2000"}
_SNIFF_BYTES = 4096

# Exceptions Pillow's decoders raise for damaged or truncated data.
_DAMAGED = (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error, zlib.error)


@dataclass(frozen=True)
class Compressed:
    data: bytes  # the encoded output (JPEG, WebP or AVIF, per the options)
    width: int  # output size, after EXIF orientation
    height: int
    source_format: str  # Pillow's name for the input format: "JPEG", "PNG", "MPO", ...


def compress(
    data: bytes,
    *,
    options: OutputOptions,
    max_pixels: int,
    avif_speed: int = DEFAULT_AVIF_SPEED,
) -> Compressed:
    """Re-encode ``data`` per ``options``; raise ``ImageError`` when it cannot be."""
    fast = compress_fast(data, options=options, max_pixels=max_pixels)
    if fast is not None:
        return fast
    return compress_with_pillow(data, options=options, max_pixels=max_pixels, avif_speed=avif_speed)


def compress_fast(data: bytes, *, options: OutputOptions, max_pixels: int) -> Compressed | None:
    """The libjpeg-turbo fast path alone: plain 8-bit JPEGs to a full-size JPEG, or
    ``None`` for anything else, or any doubt (``compress_with_pillow`` then does it).
    It never raises, and its work is bounded: a decode and an encode of at most
    ``max_pixels``, the GIL released throughout."""
    if options.format != "jpeg" or options.max_size is not None:
        return None
    fast = imaging_turbo.reencode(
        data, quality=options.quality, max_pixels=max_pixels, icc_space=_icc_colour_space
    )
    return None if fast is None else Compressed(fast.data, fast.width, fast.height, "JPEG")


def compress_with_pillow(
    data: bytes,
    *,
    options: OutputOptions,
    max_pixels: int,
    avif_speed: int = DEFAULT_AVIF_SPEED,
) -> Compressed:
    """``compress`` without its fast path: every format, every option."""
    # Pillow's own size checks (on the header, ICO entries, GIF frames, TIFF tiles) use our
    # cap: they fail at twice it, and only warn between once and twice it, so we check the
    # header and the loaded frame ourselves too. (Turning that warning into an error would
    # need a process-wide warnings filter; catch_warnings is not thread-safe.)
    Image.MAX_IMAGE_PIXELS = max_pixels
    # Half-decoded pictures come out grey at the bottom: a truncated file must fail.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image = _decode(data, max_pixels, options)
    except ImageError:
        raise
    except Exception as exc:  # every Pillow error, mapped in one place
        raise _decode_failure(exc, data, max_pixels) from exc
    try:
        source_format = image.format or "unknown"
        icc = image.info.get("icc_profile")
        output, icc = _to_output_mode(
            image, icc if isinstance(icc, bytes) else None, options.format
        )
        output = fit(output, options.max_size)
        encoded = encode(output, options, icc, avif_speed=avif_speed)
        return Compressed(encoded, *output.size, source_format)
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(
            ErrorCode.INTERNAL_ERROR, "ran out of memory converting the image"
        ) from exc
    except Exception as exc:
        log.exception("unexpected error converting a %s image", image.format)
        raise ImageError(
            ErrorCode.INTERNAL_ERROR, f"unexpected error converting the image{_detail(exc)}"
        ) from exc


# -- decoding ---------------------------------------------------------------------------


def _decode(data: bytes, max_pixels: int, options: OutputOptions) -> Image.Image:
    image = _open(data, max_pixels)
    if image.format == "JPEG":
        # Keep a colour JPEG that becomes a JPEG in YCbCr, the space it is stored and
        # re-encoded in: this skips a conversion to RGB and back (about a tenth of the CPU).
        # The size stays whole unless max_size shrinks it.
        ycbcr = image.mode == "RGB" and options.format == "jpeg"
        image.draft("YCbCr" if ycbcr else image.mode, draft_size(image.size, options.max_size))
    image.load()  # the first frame; raises on truncated or damaged data
    _check_pixels(image, max_pixels)  # a GIF frame or ICO entry may be larger than its header
    ImageOps.exif_transpose(image, in_place=True)
    return image


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only (Pillow is lazy): no pixel is decoded here."""
    if not data:
        raise ImageError(ErrorCode.NOT_AN_IMAGE, "the file is empty")
    refused = _refused_format(data[:_SNIFF_BYTES])
    if refused:
        raise _unsupported(refused)
    image = Image.open(BytesIO(data), formats=ALLOWED_FORMATS)
    _check_pixels(image, max_pixels)
    return image


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"the image is {width}x{height} pixels ({width * height:,}); "
            f"the limit is {max_pixels:,} pixels",
        )


def _decode_failure(exc: Exception, data: bytes, max_pixels: int) -> ImageError:
    """The one place where Pillow's errors become ``ImageError`` codes."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        # Pillow's own check: an error at twice our cap (its message would quote that doubled
        # limit), or its warning above the cap where a process turned warnings into errors.
        return ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"the image has more pixels than the limit of {max_pixels:,}",
        )
    if isinstance(exc, UnidentifiedImageError):
        return _unidentified(data)
    if isinstance(exc, MemoryError):
        return ImageError(ErrorCode.INTERNAL_ERROR, "ran out of memory decoding the image")
    if isinstance(exc, _DAMAGED):
        return ImageError(
            ErrorCode.CORRUPT_IMAGE,
            f"the image is damaged or incomplete and cannot be read{_detail(exc)}",
        )
    log.error("unexpected error decoding an image", exc_info=exc)
    return ImageError(
        ErrorCode.INTERNAL_ERROR, f"unexpected error decoding the image{_detail(exc)}"
    )


def _detail(exc: BaseException) -> str:
    return f" ({exc})" if str(exc) else ""


def _unidentified(data: bytes) -> ImageError:
    """Pillow found no allowed format: corrupt, refused or not an image at all?"""
    recognised = _pillow_formats(data[:16])
    allowed = [name for name in recognised if name in ALLOWED_FORMATS]
    if allowed:  # the signature is right but the header cannot be parsed
        return ImageError(
            ErrorCode.CORRUPT_IMAGE,
            f"the {allowed[0]} image is damaged or incomplete and cannot be read",
        )
    if recognised:
        return _unsupported(recognised[0])
    if _HTML.match(data[:_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf")):
        return ImageError(
            ErrorCode.NOT_AN_IMAGE, "the URL returned a web page (HTML), not an image"
        )
    return ImageError(ErrorCode.NOT_AN_IMAGE, "the file is not an image")


def _unsupported(name: str) -> ImageError:
    return ImageError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"{_FORMAT_NAMES.get(name, name)} images are not supported; send {_ACCEPTED}",
    )


def _pillow_formats(head: bytes) -> list[str]:
    """Every format whose Pillow plugin recognises this signature."""
    names = []
    for name, (_, accept) in Image.OPEN.items():
        try:
            # A string answer means "mine, but this Pillow cannot read it".
            if accept is not None and accept(head):
                names.append(name)
        except Exception:  # some checks index short input
            continue
    return names


# Formats Pillow would not tell us about: it has no reader for them (or, for HEIF, the
# AVIF reader would claim the shared container and fail with a confusing error).
_SVG = re.compile(
    rb"\s*(?:<\?xml[^>]*>\s*)?(?:(?:<!--.*?-->|<!doctype[^>]*>)\s*)*<svg[\s>/]", re.I | re.S
)
_HTML = re.compile(rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _is_heif(head: bytes) -> bool:
    if head[4:8] != b"ftyp":
        return False
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    return bool(brands & _HEIF_BRANDS) and not brands & _AVIF_BRANDS


_REFUSED: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("PDF", lambda head: head.startswith(b"%PDF-")),
    ("HEIF/HEIC", _is_heif),
    ("JPEG XL", lambda head: head.startswith((b"\xff\x0a", b"\0\0\0\x0cJXL \r\n\x87\n"))),
    ("SVG", lambda head: _SVG.match(head.removeprefix(b"\xef\xbb\xbf")) is not None),
)


def _refused_format(head: bytes) -> str | None:
    return next((name for name, matches in _REFUSED if matches(head)), None)


# -- conversion to what the output format holds ------------------------------------------


def _to_output_mode(
    image: Image.Image, icc: bytes | None, output_format: OutputFormat
) -> tuple[Image.Image, bytes | None]:
    """JPEG: see ``_to_jpeg_mode``. WebP and AVIF: RGBA when the image has transparency
    that is not fully opaque, else RGB (grey becomes RGB, as both formats hold only that)."""
    if output_format == "jpeg":
        return _to_jpeg_mode(image, icc)
    rgb_icc = icc if icc and _icc_colour_space(icc) == "RGB" else None
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        opaque = rgba.getchannel("A").getextrema() == (255, 255)
        return (rgba.convert("RGB") if opaque else rgba), rgb_icc
    output, icc = _to_jpeg_mode(image, icc)
    if output.mode != "RGB":  # L
        return output.convert("RGB"), rgb_icc
    return output, icc


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        image.mode in ("1", "L", "P", "RGB") and "transparency" in image.info
    )


def _to_jpeg_mode(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """8-bit RGB or L, and the ICC profile only when it describes that output."""
    mode = image.mode
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc), None
    if _has_alpha(image):
        output = _flatten_on_white(image)
    elif mode in ("RGB", "L", "YCbCr"):  # the JPEG encoder takes YCbCr as it is
        output = image
    elif mode == "1":
        output = image.convert("L")
    elif mode in ("P", "RGBX", "HSV", "LAB"):
        output = image.convert("RGB")
    elif mode == "I" or mode.startswith("I;16"):
        output = _scale_integers(image)
    elif mode == "F":
        output = _scale_floats(image)
    else:
        raise ImageError(
            ErrorCode.UNSUPPORTED_FORMAT, f"images in the {mode} colour mode are not supported"
        )
    wanted = "GRAY" if output.mode == "L" else "RGB"
    return output, icc if icc and _icc_colour_space(icc) == wanted else None


def _flatten_on_white(image: Image.Image) -> Image.Image:
    grey = image.mode in ("1", "L", "LA", "La")
    with_alpha = image.convert("LA" if grey else "RGBA")
    background = Image.new("L" if grey else "RGB", image.size, "white")
    background.paste(with_alpha, mask=with_alpha.getchannel("A"))
    return background


def _scale_integers(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit) integers to 8 bit: the 16-bit range when the values fit in it
    (0..65535 -> 0..255, as a viewer shows them), else the values' own range."""
    wide = image if image.mode == "I" else image.convert("I")
    low, high = _extrema(wide)
    if low < 0 or high > 65535:
        return _stretch(wide, low, high)
    return _stretch(wide, 0.0, 65535.0)


def _scale_floats(image: Image.Image) -> Image.Image:
    """Floats to 8 bit: 0..1 when the values lie there (the usual convention), else
    the values' own range."""
    low, high = _extrema(image)
    if low >= 0.0 and high <= 1.0:
        return _stretch(image, 0.0, 1.0)
    return _stretch(image, low, high)


def _extrema(image: Image.Image) -> tuple[float, float]:
    low, high = image.getextrema()  # one band: (min, max)
    assert isinstance(low, int | float) and isinstance(high, int | float)
    return float(low), float(high)


def _stretch(image: Image.Image, low: float, high: float) -> Image.Image:
    """Map low..high linearly onto 0..255 (one pass in C), rounding to nearest."""
    scale = 255.0 / (high - low) if high > low else 0.0
    offset = 0.5 - low * scale
    return image.point(lambda value: value * scale + offset).convert("L")


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Through the image's CMYK profile to sRGB when it has one (the printer's real inks),
    else Pillow's plain conversion. The values here are ink amounts: Pillow's JPEG reader
    takes every CMYK JPEG as Adobe-inverted (what Photoshop writes), APP14 marker or not,
    as browsers do."""
    if icc and _icc_colour_space(icc) == "CMYK":
        try:
            cmyk = ImageCms.ImageCmsProfile(BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            converted = ImageCms.applyTransform(
                image, ImageCms.buildTransform(cmyk, srgb, "CMYK", "RGB")
            )
            assert converted is not None  # None only when converting in place
            return converted
        except ImageCms.PyCMSError:
            log.info("unusable CMYK profile; converting without it")
    return image.convert("RGB")


def _icc_colour_space(icc: bytes) -> str | None:
    """The colour space an ICC profile describes ("RGB", "GRAY", "CMYK"...), None if invalid."""
    try:
        return ImageCms.ImageCmsProfile(BytesIO(icc)).profile.xcolor_space.strip()
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None
