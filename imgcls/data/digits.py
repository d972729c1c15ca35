"""scikit-learn's digits: 1,797 real 8x8 grayscale handwritten digits, the built-in default."""

from __future__ import annotations

import numpy as np

from imgcls.data.splits import DataSplits, from_arrays
from imgcls.registry import DATASETS


@DATASETS.register("digits")
def digits(
    split_seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other dataset uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    classes = [str(c) for c in bunch.target_names]
    return from_arrays("digits", images, labels, classes, val_fraction, test_fraction, split_seed)
