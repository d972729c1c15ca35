"""Datasets (registered in DATASETS), the in-memory device loader and batched augmentation."""

from imgcls.data import augment, digits, synthetic  # noqa: F401  (registration)
from imgcls.data.splits import DataSplits, ImageSet

__all__ = ["DataSplits", "ImageSet"]
