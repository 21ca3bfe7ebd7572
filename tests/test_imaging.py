"""compress(): every input a browser shows comes out as a plain 8-bit JPEG, or a clear error."""

from __future__ import annotations

import time
import warnings
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageStat, features

from imgbatch.errors import ErrorCode, ImageError
from imgbatch.imaging import Compressed, compress
from imgbatch.options import OutputOptions
from tests import images

QUALITY = 50
OPTIONS = OutputOptions(quality=QUALITY)
MAX_PIXELS = 50_000_000  # the service's default
RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def run(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[Compressed, Image.Image]:
    result = compress(data, options=OPTIONS, max_pixels=max_pixels)
    output = images.decode(result.data)
    assert output.format == "JPEG"
    assert output.mode in ("RGB", "L")
    assert output.size == (result.width, result.height)
    return result, output


def failure(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageError:
    with pytest.raises(ImageError) as caught:
        compress(data, options=OPTIONS, max_pixels=max_pixels)
    return caught.value


def near(actual: object, expected: tuple[int, ...] | int, tolerance: int = 12) -> bool:
    if isinstance(expected, int):
        return isinstance(actual, int) and abs(actual - expected) <= tolerance
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# -- the corpus ---------------------------------------------------------------------------


def test_corpus_photos_become_smaller_jpegs_at_quality_50(photos: list[Path]) -> None:
    for photo in photos:
        data = photo.read_bytes()
        result, output = run(data)
        with Image.open(photo) as source:
            reference = BytesIO()
            source.save(reference, "JPEG", quality=50)
            assert output.size == source.size, photo.name
        assert len(result.data) < len(data), photo.name
        assert result.source_format == "JPEG"
        assert output.quantization == Image.open(reference).quantization, photo.name  # type: ignore[attr-defined]


# -- orientation, transparency, colour ------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(3, "bottom-right"), (6, "top-right"), (8, "bottom-left")],
)
def test_exif_orientation_is_applied(orientation: int, corner: str) -> None:
    stored = images.marked((64, 32))  # red block in the stored top-left corner
    result, output = run(images.jpeg_with_exif(stored, Orientation=orientation))

    swapped = orientation in (6, 8)
    assert (result.width, result.height) == ((32, 64) if swapped else (64, 32))
    right, bottom = output.width - 8, output.height - 8
    corners = {"top-left": (8, 8), "top-right": (right, 8), "bottom-left": (8, bottom)}
    corners["bottom-right"] = (right, bottom)
    for name, xy in corners.items():
        assert near(output.getpixel(xy), RED if name == corner else WHITE, 40), name


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_flattened_onto_white(mode: str) -> None:
    _, output = run(images.transparent_png(mode))  # clear left half, black right half
    assert output.mode == ("L" if mode == "LA" else "RGB")
    expected_white = 255 if output.mode == "L" else WHITE
    expected_black = 0 if output.mode == "L" else BLACK
    assert near(output.getpixel((2, 4)), expected_white, 4)
    assert near(output.getpixel((13, 4)), expected_black, 4)


def test_half_transparent_red_blends_with_white() -> None:
    data = images.encode(Image.new("RGBA", (16, 16), (255, 0, 0, 128)), "PNG")
    _, output = run(data)
    assert near(output.getpixel((8, 8)), (255, 127, 127), 6)


def test_gif_transparency_is_white() -> None:
    frame = Image.new("P", (16, 16), 0)
    frame.putpalette([*RED, *BLUE])
    frame.paste(1, (8, 0, 16, 16))
    _, output = run(images.encode(frame, "GIF", transparency=0))
    assert near(output.getpixel((2, 8)), WHITE, 6)
    assert near(output.getpixel((13, 8)), BLUE, 40)


@pytest.mark.parametrize("adobe_marker", [True, False], ids=["adobe-app14", "no-app14"])
@pytest.mark.parametrize(
    ("ink", "rgb"),
    [((255, 0, 0, 0), (0, 255, 255)), ((0, 255, 255, 0), RED), ((0, 0, 0, 0), WHITE)],
)
def test_cmyk_jpeg_colours(
    adobe_marker: bool, ink: tuple[int, int, int, int], rgb: tuple[int, int, int]
) -> None:
    data = images.cmyk_jpeg(ink)
    if not adobe_marker:
        data = images.without_adobe_marker(data)
    # Stored the Adobe way, inverted (0 = full ink); Pillow reads every CMYK JPEG so, as
    # browsers do, with or without the APP14 marker.
    assert images.stored_cmyk(data) == tuple(255 - value for value in ink)
    _, output = run(data)
    assert output.mode == "RGB"
    assert near(output.getpixel((8, 8)), rgb, 8)


def test_cmyk_goes_through_its_profile_to_srgb() -> None:
    data = images.cmyk_jpeg((255, 0, 0, 0), icc_profile=images.cmyk_icc_profile())
    _, output = run(data)
    assert output.mode == "RGB"
    assert near(output.getpixel((8, 8)), images.INKS["C"], 8)  # printed cyan, not (0, 255, 255)
    assert "icc_profile" not in output.info  # a CMYK profile must not describe RGB pixels


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B"), ("TIFF", "I")]
)
def test_16bit_greyscale_is_scaled_not_clipped(fmt: str, mode: str) -> None:
    data = images.gradient16(fmt, mode)  # 17 bands, 0..65535
    assert images.decode(data).mode == mode
    _, output = run(data)
    assert output.mode == "L"
    levels = [output.getpixel((16 * band + 8, 8)) for band in range(17)]
    expected = [round(band * 4096 / 257) for band in range(16)] + [255]
    for level, wanted in zip(levels, expected, strict=True):
        assert near(level, wanted, 4), levels


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),  # the usual 0..1 range
        ([-1.0, 0.0, 1.0, 3.0], [0, 64, 128, 255]),  # anything else: its own range
    ],
)
def test_float_pixels_are_scaled(values: list[float], expected: list[int]) -> None:
    _, output = run(images.float_tiff(values))
    assert output.mode == "L"
    levels = [output.getpixel((16 * band + 8, 8)) for band in range(len(values))]
    for level, wanted in zip(levels, expected, strict=True):
        assert near(level, wanted, 4), levels


def test_greyscale_stays_greyscale() -> None:
    grey = images.photo_like(mode="L")
    for data in (images.encode(grey, "JPEG"), images.encode(grey.convert("1"), "BMP")):
        _, output = run(data)
        assert output.mode == "L"


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],  # PNG with save_all: APNG
)
def test_animation_gives_its_first_frame(fmt: str, options: dict[str, object]) -> None:
    result, output = run(images.animated(fmt, [RED, BLUE, BLUE], **options))
    assert result.source_format == fmt
    assert near(output.getpixel((8, 8)), RED, 8)


# -- metadata -------------------------------------------------------------------------------


def test_rgb_icc_profile_is_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for fmt in ("JPEG", "PNG"):
        _, output = run(images.encode(images.photo_like(), fmt, icc_profile=srgb))
        assert output.info.get("icc_profile") == srgb, fmt


def test_icc_profile_dropped_when_it_does_not_fit() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey_with_rgb_profile = images.encode(images.photo_like(mode="L"), "PNG", icc_profile=srgb)
    garbage = images.encode(images.photo_like(), "PNG", icc_profile=b"not a profile at all")
    for data in (grey_with_rgb_profile, garbage):
        _, output = run(data)
        assert "icc_profile" not in output.info


def test_gps_camera_and_comments_are_dropped() -> None:
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    data = images.jpeg_with_exif(images.photo_like(), Make="SecretCam", GPSInfo=gps)
    source = Image.open(BytesIO(data))
    source.load()
    assert source.getexif().get_ifd(0x8825)  # the input does carry GPS
    commented = images.encode(
        source, "JPEG", exif=source.getexif(), comment=b"shot at home", xmp=b"<x:xmpmeta/>"
    )

    result, output = run(commented)
    assert "exif" not in output.info
    assert not output.getexif()
    for secret in (b"SecretCam", b"shot at home", b"xmpmeta", b"Exif"):
        assert secret not in result.data


# -- formats --------------------------------------------------------------------------------


def test_progressive_jpeg_in() -> None:
    result, output = run(images.encode(images.photo_like(), "JPEG", progressive=True))
    assert result.source_format == "JPEG"
    assert not output.info.get("progressive")  # baseline out


FORMATS = [
    ("PNG", {}),
    ("WEBP", {"quality": 95}),
    ("GIF", {}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
    ("ICO", {"sizes": [(48, 48)]}),
    ("MPO", {"save_all": True, "append_images": [images.photo_like()]}),
    pytest.param(
        "AVIF",
        {"quality": 95},
        marks=pytest.mark.skipif(not features.check("avif"), reason="no AVIF in this Pillow"),
    ),
]


@pytest.mark.parametrize(("fmt", "options"), FORMATS)
def test_every_browser_format_works(fmt: str, options: dict[str, object]) -> None:
    source = Image.new("RGB", (48, 48), (30, 120, 200))
    result, output = run(images.encode(source, fmt, **options))
    assert result.source_format == fmt
    assert (result.width, result.height) == (48, 48)
    assert near(output.getpixel((24, 24)), (30, 120, 200), 10)


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("PNG", {}),
        ("GIF", {}),
        ("WEBP", {}),
        ("BMP", {}),
        ("TIFF", {"compression": "tiff_deflate"}),
        pytest.param("AVIF", {}, marks=pytest.mark.skipif(not features.check("avif"), reason="")),
    ],
    ids=["jpeg", "progressive-jpeg", "png", "gif", "webp", "bmp", "tiff", "avif"],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's TIFF reader, rightly
def test_truncated_file_is_corrupt_never_half_grey(
    fmt: str, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = images.encode(images.photo_like((256, 256)), fmt, **options)
    truncated = data[: len(data) * 2 // 3]
    assert failure(truncated).code is ErrorCode.CORRUPT_IMAGE
    # Even when something in the process asked Pillow to accept truncated files.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert failure(truncated).code is ErrorCode.CORRUPT_IMAGE


def test_damaged_header_is_corrupt() -> None:
    data = images.encode(images.photo_like(), "PNG")
    damaged = data[:16] + b"\0" * 20  # the PNG signature, then garbage instead of IHDR
    error = failure(damaged)
    assert error.code is ErrorCode.CORRUPT_IMAGE
    assert "PNG" in error.message


def test_pixel_bomb_fails_fast_from_the_header() -> None:
    bomb = images.png_header_bomb(30_000, 30_000)  # 900 million pixels, 2.7 GB if decoded
    started = time.perf_counter()
    error = failure(bomb)
    assert time.perf_counter() - started < 0.5
    assert error.code is ErrorCode.TOO_MANY_PIXELS
    assert "50,000,000" in error.message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_cap_is_the_configured_one() -> None:
    # 64 million pixels: over the 50M cap, under Pillow's own bomb threshold (89M).
    error = failure(images.png_header_bomb(8000, 8000))
    assert error.code is ErrorCode.TOO_MANY_PIXELS
    assert "8000x8000" in error.message
    exact = images.encode(images.photo_like((64, 48)), "PNG")
    run(exact, max_pixels=64 * 48)
    assert failure(exact, max_pixels=64 * 48 - 1).code is ErrorCode.TOO_MANY_PIXELS


def test_icon_hiding_a_huge_picture_is_refused_before_decoding() -> None:
    # The ICO directory says 16x16; the PNG inside claims 5000x5000. Pillow checks the
    # inner size against its own limit, which compress() sets to the configured cap.
    icon = images.ico_around(images.png_header_bomb(5000, 5000))
    started = time.perf_counter()
    assert failure(icon, max_pixels=1_000_000).code is ErrorCode.TOO_MANY_PIXELS
    assert time.perf_counter() - started < 0.5


def test_pillow_bomb_warning_made_an_error_is_too_many_pixels() -> None:
    # A worker may run with warnings.simplefilter("error", DecompressionBombWarning): the
    # ICO's inner picture (1.2x the cap) then fails inside Pillow, with the same code.
    icon = images.ico_around(images.png_header_bomb(1100, 1100))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert failure(icon, max_pixels=1_000_000).code is ErrorCode.TOO_MANY_PIXELS


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (images.html(), "web page"),
        (b"  \n<html><body>Access denied</body></html>", "web page"),
        (b'{"error": "not found"}', "not an image"),
        (b"Just some text, not an image.", "not an image"),
        (bytes(range(256)) * 4, "not an image"),
        (b"", "empty"),
    ],
    ids=["html", "html-fragment", "json", "text", "binary", "empty"],
)
def test_not_an_image(data: bytes, hint: str) -> None:
    error = failure(data)
    assert error.code is ErrorCode.NOT_AN_IMAGE
    assert hint in error.message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (images.eps(), "PostScript"),
        (images.pdf(), "PDF"),
        (images.psd_header(), "Photoshop"),
        (images.svg(), "SVG"),  # a vector format: recognised, and refused as unsupported
        (images.heic_header(), "HEIF"),
        (images.encode(images.photo_like(), "JPEG2000"), "JPEG 2000"),
        (images.encode(images.photo_like(), "PPM"), "PPM"),
    ],
    ids=["eps", "pdf", "psd", "svg", "heic", "jpeg2000", "ppm"],
)
def test_recognised_but_refused_formats(data: bytes, name: str) -> None:
    error = failure(data)
    assert error.code is ErrorCode.UNSUPPORTED_FORMAT
    assert name in error.message
    assert "JPEG, PNG" in error.message  # says what to send instead


def test_colour_jpeg_fast_path_matches_a_plain_rgb_reencode(photos: list[Path]) -> None:
    """Colour JPEGs are re-encoded from YCbCr without a round trip through RGB; the
    pixels must match what a plain RGB re-encode gives, to rounding."""
    data = photos[0].read_bytes()
    fast = Image.open(BytesIO(compress(data, options=OPTIONS, max_pixels=MAX_PIXELS).data))
    buffer = BytesIO()
    Image.open(BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=50)
    plain = Image.open(buffer)
    assert fast.mode == "RGB" and fast.size == plain.size
    difference = ImageStat.Stat(ImageChops.difference(fast, plain.convert("RGB"))).mean
    assert max(difference) < 1.0
