"""Decoding image files with Pillow: one place, no torch (``imgcls predict model=`` uses it).

Anything Pillow refuses is an :class:`UnreadableImageError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgcls.base.errors import UnreadableImageError, one_line

if TYPE_CHECKING:
    from PIL import Image


def open_image(path: str | Path, mode: str) -> Image.Image:
    """The decoded image converted to ``mode`` (L, RGB, RGBA); anything Pillow refuses is an
    :class:`UnreadableImageError` naming the file.

    Pillow raises many kinds of errors for bad files (OSError, SyntaxError, ValueError, and
    DecompressionBombError for a header claiming more pixels than its limit, which is not an
    OSError), so every error while decoding counts: the file is what is wrong.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except Exception as error:
        raise UnreadableImageError(f"cannot read image file {path}: {one_line(error)}") from error
