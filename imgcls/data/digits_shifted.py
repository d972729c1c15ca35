"""The digits under a domain shift: smaller and noisy, optionally colour-inverted (a DANN target).

The same 1,797 scikit-learn digits and the same classes as ``digits``, so a model trained on
``digits`` can be scored here unchanged; with equal ``split_seed`` the test images here are the
shifted versions of the ``digits`` test images, never seen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from imgcls.base.errors import UserError
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


@DATASETS.register("digits_shifted")
def digits_shifted(
    invert: bool = False,
    noise: float = 0.3,
    scale: float = 0.75,
    seed: int = 0,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> DataSplits:
    if noise < 0:
        raise UserError(f"dataset.noise={noise} is invalid: it must be >= 0")
    if not 0.25 <= scale <= 4.0:
        raise UserError(f"dataset.scale={scale} is invalid: use a factor in [0.25, 4]")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    images = shift_images(images, invert, noise, scale, seed)
    labels = bunch.target.astype(np.int64)
    classes = [str(c) for c in bunch.target_names]
    return from_arrays(
        "digits_shifted", images, labels, classes, val_fraction, test_fraction, split_seed
    )
