"""The digits under a domain shift: smaller and noisy, optionally colour-inverted (a DANN target).

The same 1,797 scikit-learn digits and the same classes as ``digits``, so a model trained on
``digits`` can be scored here unchanged; with equal ``split_seed`` the test images here are the
shifted versions of the ``digits`` test images, never seen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from imgcls.config.options.datasets import DigitsShiftedOptions
from imgcls.data.splits import DataSplits, from_arrays
from imgcls.registry import DATASETS


def shift_images(
    images: np.ndarray, invert: bool, noise: float, scale: float, seed: int
) -> np.ndarray:
    """uint8 (N, 1, H, W) -> shifted uint8: rescaled about the centre, inverted, noised."""

    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    size = x.shape[-1]
    if scale != 1.0:
        new = max(1, round(size * scale))
        resized = torch.nn.functional.interpolate(
            x, size=(new, new), mode="bilinear", align_corners=False, antialias=scale < 1
        )
        if new <= size:
            out = torch.zeros_like(x)
            start = (size - new) // 2
            out[..., start : start + new, start : start + new] = resized
        else:
            start = (new - size) // 2
            out = resized[..., start : start + size, start : start + size]
        x = out
    if invert:
        x = 1.0 - x
    if noise > 0:
        rng = np.random.default_rng(seed)
        x = x + torch.from_numpy(rng.standard_normal(x.shape, dtype=np.float32) * noise)
    return np.rint(x.clamp(0, 1).numpy() * 255.0).astype(np.uint8)


@DATASETS.register("digits_shifted", DigitsShiftedOptions)
def digits_shifted(options: DigitsShiftedOptions) -> DataSplits:
    """The digits shifted by :func:`shift_images`, split like ``digits``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    images = shift_images(images, options.invert, options.noise, options.scale, options.seed)
    labels = bunch.target.astype(np.int64)
    classes = [str(c) for c in bunch.target_names]
    return from_arrays("digits_shifted", images, labels, classes, options)
