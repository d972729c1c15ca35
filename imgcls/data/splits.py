"""The in-memory dataset form every loader returns: uint8 NCHW tensors per split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imgcls.errors import UserError


@dataclass
class ImageSet:
    """Images as one uint8 tensor (N, C, H, W) and integer labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device))


@dataclass
class DataSplits:
    """Train, validation and test splits with what a model and a preprocessor need to know."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        h, w = self.image_size
        return (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test "
            f"images of {self.channels}x{h}x{w}, {self.num_classes} classes"
        )

    def spec(self) -> dict:
        """What prediction needs to preprocess new images like the training data."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "channels": self.channels,
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
        }


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise UserError(f"dataset.{key}={value} is invalid: it must be between 0 and 1")
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"dataset.val_fraction + dataset.test_fraction = {val_fraction + test_fraction:g} "
            "leaves no training data: keep the sum below 1"
        )


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a stratified train/val/test split, fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    check_fractions(val_fraction, test_fraction)
    indices = np.arange(len(labels))
    try:
        rest, test = train_test_split(
            indices, test_size=test_fraction, stratify=labels, random_state=seed
        )
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1.0 - test_fraction),
            stratify=labels[rest],
            random_state=seed,
        )
    except ValueError as error:
        counts = np.bincount(labels)
        raise UserError(
            f"cannot split {len(labels)} images of {len(counts)} classes "
            f"(smallest class: {counts.min()} images) into train/val/test with "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: {error}"
        ) from error
    return np.sort(train), np.sort(val), np.sort(test)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..1 scale."""
    x = images.to(torch.float64).div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def from_arrays(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
) -> DataSplits:
    """Split uint8 (N, C, H, W) arrays stratified and compute training-set statistics."""
    if len(images) == 0:
        raise UserError(f"dataset '{name}' has no images")
    train_idx, val_idx, test_idx = stratified_split(labels, val_fraction, test_fraction, split_seed)
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    target = torch.from_numpy(labels.astype(np.int64))

    def subset(idx: np.ndarray) -> ImageSet:
        index = torch.from_numpy(idx)
        return ImageSet(tensor[index].contiguous(), target[index].contiguous())

    train = subset(train_idx)
    mean, std = channel_stats(train.images)
    return DataSplits(name, train, subset(val_idx), subset(test_idx), classes, mean, std)
