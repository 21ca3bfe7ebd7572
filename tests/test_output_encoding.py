"""compress() per output options: WebP and AVIF follow JPEG's orientation, colour and
metadata rules (alpha is kept), and ``max_size`` scales down only, keeping the ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageCms

from imgbatch.imaging import compress
from imgbatch.options import OutputFormat, OutputOptions
from tests import images
from tests.helpers import quantization_of, reference_quantization

MAX_PIXELS = 50_000_000
RED, WHITE = (255, 0, 0), (255, 255, 255)
PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def run(data: bytes, output_format: OutputFormat = "jpeg", **options: int) -> Image.Image:
    chosen = OutputOptions(format=output_format, **options)
    result = compress(data, options=chosen, max_pixels=MAX_PIXELS)
    output = images.decode(result.data)
    assert output.format == PILLOW_FORMATS[output_format]
    assert output.size == (result.width, result.height)
    return output


def near(actual: object, expected: tuple[int, ...], tolerance: int = 16) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def within_a_pixel_of_the_ratio(size: tuple[int, int], source: tuple[int, int]) -> bool:
    """The output's short side is within 1 px of what the exact ratio gives."""
    (width, height), (source_width, source_height) = size, source
    if width >= height:
        return abs(height - source_height * width / source_width) <= 1
    return abs(width - source_width * height / source_height) <= 1


# -- WebP and AVIF under JPEG's rules ---------------------------------------------------------


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_exif_orientation_is_applied(output_format: OutputFormat) -> None:
    stored = images.marked((64, 32))  # red block in the stored top-left corner
    output = run(images.jpeg_with_exif(stored, Orientation=6), output_format).convert("RGB")
    assert output.size == (32, 64)
    assert near(output.getpixel((24, 8)), RED)  # rotated 90° clockwise: now top right
    assert near(output.getpixel((8, 56)), WHITE)


@pytest.mark.parametrize("output_format", ["webp", "avif"])
@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_kept(output_format: OutputFormat, mode: str) -> None:
    output = run(images.transparent_png(mode), output_format)
    assert output.mode == "RGBA"
    alpha = output.getchannel("A")
    # AVIF's alpha plane is lossy too: within a few levels.
    assert alpha.getpixel((2, 4)) <= 4  # type: ignore[operator]  # the transparent left half
    assert alpha.getpixel((13, 4)) >= 251  # type: ignore[operator]


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_fully_opaque_alpha_is_dropped(output_format: OutputFormat) -> None:
    opaque = images.photo_like().convert("RGBA")
    assert run(images.encode(opaque, "PNG"), output_format).mode == "RGB"


def test_jpeg_still_flattens_transparency_onto_white() -> None:
    output = run(images.transparent_png("RGBA"), "jpeg").convert("RGB")
    assert near(output.getpixel((2, 4)), WHITE)


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_rgb_icc_profile_is_kept_and_others_dropped(output_format: OutputFormat) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    kept = run(images.encode(images.photo_like(), "PNG", icc_profile=srgb), output_format)
    assert kept.info.get("icc_profile") == srgb
    garbage = images.encode(images.photo_like(), "PNG", icc_profile=b"not a profile at all")
    assert not run(garbage, output_format).info.get("icc_profile")


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_grey_becomes_rgb(output_format: OutputFormat) -> None:
    output = run(images.encode(images.photo_like(mode="L"), "PNG"), output_format)
    assert output.mode == "RGB"


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_cmyk_is_converted_through_its_profile(output_format: OutputFormat) -> None:
    data = images.cmyk_jpeg((255, 0, 0, 0), icc_profile=images.cmyk_icc_profile())
    output = run(data, output_format)
    assert output.mode == "RGB"
    assert not output.info.get("icc_profile")  # a CMYK profile must not describe RGB pixels
    cyan = output.getpixel((8, 8))
    assert isinstance(cyan, tuple) and cyan[0] < 100 < cyan[2]


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_metadata_is_dropped(output_format: OutputFormat) -> None:
    data = images.jpeg_with_exif(images.photo_like(), Make="Camera", GPSInfo={1: "N"})
    output = run(data, output_format)
    assert not output.info.get("exif") and not output.getexif()


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_sixteen_bit_input_is_scaled(output_format: OutputFormat) -> None:
    output = run(images.gradient16(), output_format).convert("L")
    low, high = output.getextrema()
    assert isinstance(low, int) and isinstance(high, int) and low < 40 and high > 215


def test_quality_80_gives_the_q80_tables() -> None:
    output = compress(
        images.encode(images.photo_like(), "PNG"),
        options=OutputOptions(quality=80),
        max_pixels=MAX_PIXELS,
    )
    assert quantization_of(output.data) == reference_quantization(80)


def test_webp_and_avif_are_smaller_than_a_lossless_source(photos: list[Path]) -> None:
    source = Image.open(photos[0])
    png = images.encode(source.convert("RGB"), "PNG")
    for output_format in ("webp", "avif"):
        assert (
            len(
                compress(
                    png, options=OutputOptions(format=output_format), max_pixels=MAX_PIXELS
                ).data
            )
            < len(png) // 4
        )


# -- max_size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize(
    ("size", "max_size", "expected"),
    [
        ((300, 200), 150, (150, 100)),  # landscape
        ((200, 300), 150, (100, 150)),  # portrait
        ((301, 97), 64, (64, 21)),  # 20.62... rounds to 21
        ((120, 80), 120, (120, 80)),  # already fits: unchanged
        ((60, 40), 1000, (60, 40)),  # small: never scaled up
    ],
)
def test_max_size_scales_down_to_fit_keeping_the_ratio(
    output_format: OutputFormat,
    size: tuple[int, int],
    max_size: int,
    expected: tuple[int, int],
) -> None:
    data = images.encode(images.photo_like(size), "PNG")
    assert run(data, output_format, max_size=max_size).size == expected


@pytest.mark.parametrize("max_size", [2048, 1000, 640, 333, 100, 16])
def test_max_size_on_the_corpus_jpegs_keeps_the_exact_ratio(
    photos: list[Path], max_size: int
) -> None:
    """JPEGs take the reduced-scale decode path: the ratio still holds to 1 px."""
    for photo in photos:
        source = Image.open(photo).size
        output = run(photo.read_bytes(), "jpeg", max_size=max_size)
        if max(source) <= max_size:
            assert output.size == source, photo.name
            continue
        assert max(output.size) == max_size, photo.name
        assert within_a_pixel_of_the_ratio(output.size, source), (photo.name, output.size)


def test_max_size_applies_after_the_exif_rotation() -> None:
    stored = images.marked((200, 100))  # displayed as 100 x 200 (Orientation 6)
    output = run(images.jpeg_with_exif(stored, Orientation=6), "webp", max_size=50)
    assert output.size == (25, 50)


def test_a_reduced_jpeg_looks_like_the_source(photos: list[Path]) -> None:
    """The draft decode and the filter keep the picture: against a plain Lanczos resize of
    the full decode, every pixel is close."""
    photo = next(p for p in photos if Image.open(p).width >= 1600)
    output = run(photo.read_bytes(), "jpeg", quality=95, max_size=400).convert("RGB")
    reference = Image.open(photo).convert("RGB").resize(output.size, Image.Resampling.LANCZOS)
    difference = [
        abs(a - b)
        for pa, pb in zip(output.getdata(), reference.getdata(), strict=True)
        for a, b in zip(pa, pb, strict=True)
    ]
    assert sum(difference) / len(difference) < 3
