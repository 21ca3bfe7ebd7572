"""The libjpeg-turbo fast path gives what the Pillow path gives, and declines the rest.

Every input here goes through ``compress`` twice: as it runs, and with the fast path
switched off (the Pillow path alone). Same size, same quantisation tables and sampling,
baseline, pixels within rounding; the same error codes for what fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import numpy.typing
import pytest
from PIL import ImageCms, JpegImagePlugin

from imgbatch import imaging, imaging_turbo
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.imaging import Compressed, compress
from imgbatch.options import OutputOptions
from tests import images

QUALITY = 50
OPTIONS = OutputOptions(quality=QUALITY)
MAX_PIXELS = 50_000_000
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def fast_path(data: bytes, *, max_pixels: int = MAX_PIXELS) -> imaging_turbo.FastJpeg | None:
    return imaging_turbo.reencode(
        data, quality=QUALITY, max_pixels=max_pixels, icc_space=imaging._icc_colour_space
    )


def both(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Compressed, Compressed]:
    fast = compress(data, options=OPTIONS, max_pixels=MAX_PIXELS)
    with monkeypatch.context() as patch:
        patch.setattr(imaging_turbo, "reencode", lambda *args, **kwargs: None)
        slow = compress(data, options=OPTIONS, max_pixels=MAX_PIXELS)
    return fast, slow


def pixels(data: bytes) -> numpy.typing.NDArray[numpy.int16]:
    return numpy.asarray(images.decode(data), dtype=numpy.int16)


def assert_same_output(
    source: bytes, fast: Compressed, slow: Compressed, *, mean: float = 2.0
) -> None:
    """Same size, tables, sampling and metadata; pixels within rounding of each other, and
    no further from the source than Pillow's (beyond a tenth)."""
    one, other = images.decode(fast.data), images.decode(slow.data)
    assert isinstance(one, JpegImagePlugin.JpegImageFile)
    assert isinstance(other, JpegImagePlugin.JpegImageFile)
    assert (fast.width, fast.height) == (slow.width, slow.height) == one.size == other.size
    assert fast.source_format == slow.source_format
    assert one.mode == other.mode
    assert one.quantization == other.quantization
    assert JpegImagePlugin.get_sampling(one) == JpegImagePlugin.get_sampling(other)
    assert not one.info.get("progressive") and not other.info.get("progressive")
    assert one.info.get("icc_profile") == other.info.get("icc_profile")
    original = pixels(source)
    if original.shape != pixels(fast.data).shape:
        original = numpy.asarray(images.decode(source).convert(one.mode), dtype=numpy.int16)
    difference = numpy.abs(pixels(fast.data) - pixels(slow.data))
    assert difference.mean() < mean
    assert numpy.percentile(difference, 99.9) <= 24  # re-encoding noise, not a shifted picture
    fast_error = numpy.abs(pixels(fast.data) - original).mean()
    slow_error = numpy.abs(pixels(slow.data) - original).mean()
    assert fast_error <= slow_error * 1.1
    assert 0.9 < len(fast.data) / len(slow.data) < 1.1


# -- the common case takes the fast path and matches Pillow -------------------------------


def test_corpus_photos_take_the_fast_path_and_match_pillow(
    photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for photo in photos:
        data = photo.read_bytes()
        assert fast_path(data) is not None, photo.name
        fast, slow = both(data, monkeypatch)
        assert_same_output(data, fast, slow, mean=1.0)


# Small synthetic pictures of flat colour and sharp edges differ a little more than photos.
@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"subsampling": "4:4:4", "quality": 95}),
        ("RGB", {"subsampling": "4:2:2"}),
        ("L", {}),
        ("L", {"progressive": True}),
    ],
    ids=["baseline", "progressive", "444", "422", "grey", "grey-progressive"],
)
def test_plain_jpegs_take_the_fast_path(
    mode: str, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = images.encode(images.photo_like((203, 117), mode=mode), "JPEG", **options)
    result = fast_path(data)
    assert result is not None
    assert (result.width, result.height) == (203, 117)
    fast, slow = both(data, monkeypatch)
    assert_same_output(data, fast, slow)


def test_rgb_icc_profile_is_spliced_where_pillow_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    large = SRGB + b"\0" * 150_000  # three APP2 segments
    for profile in (SRGB, large):
        data = images.encode(images.photo_like((96, 64)), "JPEG", icc_profile=profile)
        assert fast_path(data) is not None
        fast, slow = both(data, monkeypatch)
        assert images.decode(fast.data).info["icc_profile"] == profile
        assert_same_output(data, fast, slow)
        assert _markers(fast.data) == _markers(slow.data)  # segment order and lengths


def test_icc_profile_that_does_not_fit_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    grey_with_rgb_profile = images.encode(images.photo_like(mode="L"), "JPEG", icc_profile=SRGB)
    garbage = images.encode(images.photo_like(), "JPEG", icc_profile=b"not a profile")
    for data in (grey_with_rgb_profile, garbage):
        assert fast_path(data) is not None
        fast, slow = both(data, monkeypatch)
        assert "icc_profile" not in images.decode(fast.data).info
        assert_same_output(data, fast, slow)


def test_exif_without_a_turn_stays_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for tags in ({"Orientation": 1, "Make": "SecretCam"}, {"Make": "SecretCam"}):
        data = images.jpeg_with_exif(images.photo_like(), **tags)
        assert fast_path(data) is not None
        fast, slow = both(data, monkeypatch)
        assert b"SecretCam" not in fast.data and b"Exif" not in fast.data
        assert_same_output(data, fast, slow)


# -- everything else declines, and compress() gives the Pillow path's answer ---------------


def _cmyk() -> bytes:
    return images.cmyk_jpeg((255, 0, 0, 0))


def _mpo() -> bytes:
    extra = [images.photo_like()]
    return images.encode(images.photo_like(), "MPO", save_all=True, append_images=extra)


def _xmp_turned() -> bytes:
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    return images.encode(images.marked((64, 32)), "JPEG", xmp=xmp)


def _twelve_bit_claim() -> bytes:
    data = bytearray(images.encode(images.photo_like(), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 4] = 12  # sample precision
    return bytes(data)


def _damaged_scan() -> bytes:
    data = bytearray(images.encode(images.photo_like((256, 256)), "JPEG"))
    scan = data.index(b"\xff\xda")
    data[scan + 40 : scan + 400] = b"\xff\xd9" * 180  # an end marker inside the scan data
    return bytes(data)


DECLINED = {
    "exif-turned": lambda: images.jpeg_with_exif(images.marked((64, 32)), Orientation=6),
    "xmp-turned": _xmp_turned,
    "cmyk": _cmyk,
    "mpo": _mpo,
    "12-bit": _twelve_bit_claim,
    "truncated": lambda: images.encode(images.photo_like((256, 256)), "JPEG")[:3000],
    "damaged-scan": _damaged_scan,
    "png": lambda: images.encode(images.photo_like(), "PNG"),
    "not-jpeg-after-soi": lambda: b"\xff\xd8\xff\xe0garbage",
}


@pytest.mark.parametrize("make", DECLINED.values(), ids=DECLINED.keys())
def test_everything_else_declines_and_gets_the_pillow_answer(
    make: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert callable(make)
    data = make()
    assert fast_path(data) is None
    outcomes = []
    for switched_off in (False, True):
        with monkeypatch.context() as patch:
            if switched_off:
                patch.setattr(imaging_turbo, "reencode", lambda *args, **kwargs: None)
            try:
                result = compress(data, options=OPTIONS, max_pixels=MAX_PIXELS)
                outcomes.append((result.data, result.width, result.height, result.source_format))
            except ImageError as error:
                outcomes.append((error.code,))
    assert outcomes[0] == outcomes[1]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_over_the_pixel_cap_is_pillows_error() -> None:
    data = images.encode(images.photo_like((64, 48)), "JPEG")
    assert fast_path(data, max_pixels=64 * 48) is not None
    assert fast_path(data, max_pixels=64 * 48 - 1) is None
    with pytest.raises(ImageError) as caught:
        compress(data, options=OPTIONS, max_pixels=64 * 48 - 1)
    assert caught.value.code is ErrorCode.TOO_MANY_PIXELS


def test_turned_photo_comes_out_turned() -> None:
    data = images.jpeg_with_exif(images.marked((64, 32)), Orientation=6)
    result = compress(data, options=OPTIONS, max_pixels=MAX_PIXELS)
    assert (result.width, result.height) == (32, 64)


def _markers(jpeg: bytes) -> list[tuple[int, int]]:
    """(marker, length) of every segment before the scan."""
    found, position = [], 2
    while jpeg[position + 1] != 0xDA:
        length = int.from_bytes(jpeg[position + 2 : position + 4], "big")
        found.append((jpeg[position + 1], length))
        position += 2 + length
    return found
