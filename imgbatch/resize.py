"""The size cap (``max_size``, SPEC §10): scale down to fit, never up, keeping the ratio.

Two steps, both Pillow's own:

- ``draft_size``: before decoding a JPEG, the size to ask its decoder for. libjpeg can
  decode at 1/2, 1/4 or 1/8 scale for a fraction of the work; asking for twice the final
  size (Pillow's ``reducing_gap`` rule, as ``Image.thumbnail`` does) leaves the quality to
  the filter below.
- ``fit``: Lanczos, with ``reducing_gap`` so a large reduction first bins whole pixel
  blocks (cheap) and filters only the last factor of 2 or more; the result is not told
  apart from a pure Lanczos resize (see bench/README.md for its cost).
"""

from __future__ import annotations

from PIL import Image

REDUCING_GAP = 2.0


def fitted_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int] | None:
    """The size that fits ``size`` within ``max_size`` on its longest side, or None
    when it already fits. The longest side becomes exactly ``max_size``; the other is
    rounded to the nearest pixel (at least 1), so the ratio is kept to within 1 px."""
    width, height = size
    longest = max(width, height)
    if max_size is None or longest <= max_size:
        return None
    scale = max_size / longest
    if width >= height:
        return max_size, max(1, round(height * scale))
    return max(1, round(width * scale)), max_size


def draft_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """What to ask a JPEG decoder for: the full size, or about twice the fitted size."""
    fitted = fitted_size(size, max_size)
    if fitted is None:
        return size
    return (
        min(size[0], round(fitted[0] * REDUCING_GAP)),
        min(size[1], round(fitted[1] * REDUCING_GAP)),
    )


def fit(image: Image.Image, max_size: int | None) -> Image.Image:
    """``image`` scaled down to fit ``max_size`` (the same image when it already fits)."""
    fitted = fitted_size(image.size, max_size)
    if fitted is None:
        return image
    return image.resize(fitted, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
