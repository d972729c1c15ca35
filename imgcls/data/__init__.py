"""Datasets (registered in DATASETS), the in-memory device loader and batched augmentation."""

from imgcls.data import (  # noqa: F401
    augment,
    cifar,
    digits,
    digits_shifted,
    folder,
    idx,
    svhn,
    synthetic,
)
from imgcls.data.splits import DataSplits, ImageSet

__all__ = ["DataSplits", "ImageSet"]
