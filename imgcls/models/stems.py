"""Stem choice shared by the families: small images must not be downsampled early."""

from __future__ import annotations

from imgcls.config.options.models import Stem

SMALL_IMAGE = 64  # below this many pixels on the short side, `auto` picks the small-image stem


def resolve_stem(stem: Stem, image_size: tuple[int, int]) -> Stem:
    """``auto`` -> ``cifar`` for inputs smaller than 64 pixels, else ``imagenet``."""
    if stem is Stem.auto:
        return Stem.cifar if min(image_size) < SMALL_IMAGE else Stem.imagenet
    return stem
