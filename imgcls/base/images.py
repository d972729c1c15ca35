"""Decoding image files with Pillow: one place, no torch (``imgcls predict model=`` uses it).

Training (``dataset=folder``), ``imgcls preview``, ``imgcls predict run=`` and ``imgcls predict
model=`` all decode through :func:`open_image`, so a file gives the same pixels everywhere.

The rule (docs/guide/data.md, "How image files are decoded"):

- the EXIF orientation is applied first, so a photo is seen the way a viewer shows it;
- 16-bit grayscale (Pillow modes ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) is scaled to
  8 bits by its full range: ``round(v / 257)`` (65535 -> 255, 32768 -> 128);
- 32-bit integer grayscale (``I``, e.g. a 16-bit PNG opened by older Pillow, or an integer
  TIFF) is read as 16-bit when every value lies in 0..65535 and scaled the same way;
  any value outside that range is refused, naming the file and the range found;
- 32-bit float grayscale (``F``) is read as intensities in [0, 1] (``round(v * 255)``);
  a value outside [0, 1], NaN or infinite is refused, naming the file and the range found;
- every other mode (1-bit, palette, L, LA, RGB, RGBA, CMYK, YCbCr, ...) is converted by
  Pillow as before (alpha dropped, palette expanded, CMYK inverted to RGB).

Anything Pillow refuses, and any image outside the rule, is an :class:`UnreadableImageError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgcls.base.errors import UnreadableImageError, one_line

if TYPE_CHECKING:
    from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
SIXTEEN_BIT_MAX = 65535


class _OutsideRule(ValueError):
    """An image whose pixel values the decoding rule does not cover (named by the caller)."""


def open_image(path: str | Path, mode: str) -> Image.Image:
    """The decoded image, EXIF orientation applied, converted to ``mode`` (L, RGB, RGBA) by
    the module's rule; anything Pillow refuses is an :class:`UnreadableImageError` naming
    the file.

    Pillow raises many kinds of errors for bad files (OSError, SyntaxError, ValueError, and
    DecompressionBombError for a header claiming more pixels than its limit, which is not an
    OSError), so every error while decoding counts: the file is what is wrong.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_eight_bits(upright).convert(mode)
    except _OutsideRule as error:
        raise UnreadableImageError(f"cannot read image file {path}: {error}") from error
    except Exception as error:
        raise UnreadableImageError(f"cannot read image file {path}: {one_line(error)}") from error


def to_eight_bits(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or 32-bit float grayscale image as 8-bit ``L`` by the rule
    above (scaled, never clipped: Pillow's own conversion saturates everything above 255);
    any other image unchanged."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:
        return Image.fromarray(_scale_16_bit(np.asarray(image)))
    if image.mode == "I":
        values = np.asarray(image)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > SIXTEEN_BIT_MAX:
            raise _OutsideRule(
                f"32-bit integer pixels range from {low} to {high}; imgcls reads integer "
                f"grayscale of 0..{SIXTEEN_BIT_MAX} only (scaled by 1/257 to 8 bits)"
            )
        return Image.fromarray(_scale_16_bit(values))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        finite = bool(np.isfinite(values).all())
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not finite or low < 0.0 or high > 1.0:
            found = "NaN or infinite values" if not finite else f"values from {low:g} to {high:g}"
            raise _OutsideRule(
                f"32-bit float pixels have {found}; imgcls reads float grayscale of "
                "0..1 only (scaled by 255 to 8 bits)"
            )
        return Image.fromarray(np.rint(values * 255.0).astype(np.uint8))
    return image


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255, rounded to the nearest (integer arithmetic, no float copy)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
