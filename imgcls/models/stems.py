"""Stem choice shared by the families: small images must not be downsampled early."""

from __future__ import annotations

from imgcls.base.errors import unknown_choice

STEMS = ("auto", "imagenet", "cifar")
SMALL_IMAGE = 64  # below this many pixels on the short side, `auto` picks the small-image stem


def resolve_stem(stem: str, image_size: tuple[int, int]) -> str:
    """``auto`` -> ``cifar`` for inputs smaller than 64 pixels, else ``imagenet``."""
    if stem not in STEMS:
        raise unknown_choice("model.stem", stem, STEMS)
    if stem == "auto":
        return "cifar" if min(image_size) < SMALL_IMAGE else "imagenet"
    return stem
