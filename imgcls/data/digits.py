"""scikit-learn's digits: 1,797 real 8x8 grayscale handwritten digits, the built-in default."""

from __future__ import annotations

import numpy as np

from imgcls.config.options.datasets import DigitsOptions
from imgcls.data.splits import DataSplits, from_arrays
from imgcls.registry import DATASETS


@DATASETS.register("digits", DigitsOptions)
def digits(options: DigitsOptions) -> DataSplits:
    """The 1,797 digits, split three ways."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other dataset uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    classes = [str(c) for c in bunch.target_names]
    return from_arrays("digits", images, labels, classes, options)
