"""Datasets (registered in DATASETS), the in-memory device loader and batched augmentation."""

from imgcls.data import augment, cifar, digits, folder, idx, svhn, synthetic  # noqa: F401
from imgcls.data.splits import DataSplits, ImageSet

__all__ = ["DataSplits", "ImageSet"]
