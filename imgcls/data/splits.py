"""The in-memory dataset form every loader returns: uint8 NCHW tensors per split."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import PoolOptions
from imgcls.data.targets import MULTICLASS, MULTILABEL


@dataclass
class ImageSet:
    """Images as one uint8 tensor (N, C, H, W) and their labels: class indices (N,) int64,
    or (N, classes) float32 multi-hot rows when an image may carry several labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    in_memory = True

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device))

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    def read(self, index: int) -> torch.Tensor:
        """One uint8 (C, H, W) image (the per-sample DataLoader path reads through this)."""
        return self.images[index]

    def subset(self, indices: np.ndarray) -> ImageSet:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return ImageSet(self.images[index].contiguous(), self.labels[index].contiguous())

    def materialize(self, build_cache: bool = False) -> ImageSet:
        return self

    def join(self, other: ImageSet) -> ImageSet:
        """This set's images, then ``other``'s (k-fold joins train and validation)."""
        return ImageSet(
            torch.cat([self.images, other.images.to(self.images.device)]),
            torch.cat([self.labels, other.labels.to(self.labels.device)]),
        )


class SplitSet(Protocol):
    """What a split offers: an :class:`ImageSet` in memory or a lazy set of image files."""

    labels: torch.Tensor
    in_memory: bool

    def __len__(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def image_size(self) -> tuple[int, int]: ...
    @property
    def nbytes(self) -> int: ...
    def read(self, index: int) -> torch.Tensor: ...
    def subset(self, indices: np.ndarray) -> SplitSet: ...
    def materialize(self, build_cache: bool = False) -> ImageSet: ...
    def to(self, device: torch.device | str) -> SplitSet: ...
    def join(self, other: SplitSet) -> SplitSet: ...


@dataclass(frozen=True)
class FoldSplit:
    """Which fold of a k-fold split the train and validation splits are
    (:mod:`imgcls.data.folds`): the training pool is the loader's train then validation
    images, and ``val_index`` gives each validation image's place in it."""

    folds: int
    fold: int
    split_seed: int
    split_hash: str  # the whole fold assignment of the pool and its labels, hashed
    pool_images: int
    val_index: np.ndarray  # (n_val,) pool indices of the validation images, in split order
    val_paths: list[str] | None = None  # the validation images' files (folder, table)

    def record(self) -> dict:
        """What summary.json's ``data`` keeps of the split."""
        return {
            "folds": self.folds,
            "fold": self.fold,
            "split_seed": self.split_seed,
            "split_hash": self.split_hash,
            "pool_images": self.pool_images,
        }


@dataclass
class DataSplits:
    """Train, validation and test splits with what a model and a preprocessor need to know."""

    name: str
    train: SplitSet
    val: SplitSet
    test: SplitSet
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    task: str = MULTICLASS  # MULTILABEL: labels are (N, classes) multi-hot rows
    # The group of each training-pool image (train rows, then validation rows), for datasets
    # that keep groups whole (the table's ``group_col``); k-fold keeps them whole too.
    groups: np.ndarray | None = None
    folds: FoldSplit | None = None  # set when the validation split is a k-fold fold

    @property
    def multilabel(self) -> bool:
        return self.task == MULTILABEL

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.train.image_size

    @property
    def in_memory(self) -> bool:
        return all(s.in_memory for s in (self.train, self.val, self.test))

    @property
    def nbytes(self) -> int:
        """Bytes the three splits take as uint8 tensors."""
        return sum(s.nbytes for s in (self.train, self.val, self.test))

    def materialize(self) -> DataSplits:
        """The same splits with every image decoded into memory (and into the decode cache,
        :mod:`imgcls.data.cache`, for the next run; a sample or a subset alone only reads it)."""
        if self.in_memory:
            return self
        return replace(
            self,
            train=self.train.materialize(build_cache=True),
            val=self.val.materialize(build_cache=True),
            test=self.test.materialize(build_cache=True),
        )

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
            "task": self.task,
            "classes": list(self.classes),
            "channels": self.channels,
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
        }


def strata(labels: np.ndarray) -> np.ndarray:
    """What a stratified split balances: the class of each image, or for multi-hot rows the
    image's rarest label (the label with the fewest images in ``labels``), so that rare labels
    reach every split; a row without labels is stratum -1."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    positive = labels > 0.5
    counts = positive.sum(axis=0)
    rarity = np.where(positive, counts[None, :], np.iinfo(np.int64).max)
    return np.where(positive.any(axis=1), rarity.argmin(axis=1), -1)


def _split(
    indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """train_test_split of ``indices`` stratified by :func:`strata`. Single-label data must
    stratify (a ValueError says why not); multi-label data falls back to an unstratified split
    when some rarest-label stratum is too small to be divided."""
    from sklearn.model_selection import train_test_split

    key = strata(labels)
    try:
        return train_test_split(indices, test_size=fraction, stratify=key, random_state=seed)
    except ValueError:
        if np.asarray(labels).ndim == 1:
            raise
        return train_test_split(indices, test_size=fraction, random_state=seed)


def _smallest(labels: np.ndarray) -> int:
    counts = np.bincount(strata(labels).clip(min=0))
    return int(counts[counts > 0].min()) if (counts > 0).any() else 0


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a stratified train/val/test split, fixed by ``seed`` (the fractions are
    checked by the dataset's options, :class:`imgcls.config.options.datasets.PoolOptions`).
    Multi-hot rows are stratified by their rarest label (:func:`strata`), or split
    unstratified when that cannot work."""
    labels = np.asarray(labels)
    indices = np.arange(len(labels))
    try:
        rest, test = _split(indices, labels, test_fraction, seed)
        train, val = _split(rest, labels[rest], val_fraction / (1.0 - test_fraction), seed)
    except ValueError as error:
        classes = labels.shape[1] if labels.ndim == 2 else len(np.unique(labels))
        raise UserError(
            f"cannot split {len(labels)} images of {classes} classes "
            f"(smallest class: {_smallest(labels)} images) into train/val/test with "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: {error}"
        ) from error
    return np.sort(train), np.sort(val), np.sort(test)


def channel_stats(
    images: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..1 scale.

    Sums are taken in chunks, so 50,000 CIFAR images never become one float64 copy.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    var = (squares - count * mean.square()) / max(count - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def present_classes(labels: np.ndarray) -> np.ndarray:
    """Indices of the classes that have at least one image (class indices or multi-hot rows)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return np.flatnonzero((labels > 0.5).any(axis=0))
    return np.unique(labels)


def require_classes(name: str, labels: np.ndarray, classes: list[str]) -> None:
    """A classifier needs at least two classes that actually have images."""
    present = present_classes(labels)
    if len(classes) < 2 or len(present) < 2:
        raise UserError(
            f"dataset '{name}' has {len(present)} class with images "
            f"({', '.join(classes[int(i)] for i in present) or 'none'}); a classifier needs at least 2"
        )


def cut_split(
    name: str, labels: np.ndarray, fraction: float, seed: int, what: str = "val"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rest and of a stratified ``what`` split (``fraction`` of the images).

    Class indices are stratified by class; multi-hot rows by each image's rarest label
    (:func:`strata`), falling back to an unstratified cut when a stratum is too small.
    """
    labels = np.asarray(labels)
    try:
        rest, cut = _split(np.arange(len(labels)), labels, fraction, seed)
    except ValueError as error:
        raise UserError(
            f"cannot cut a stratified {what} split ({what}_fraction={fraction:g}) from the "
            f"{len(labels)} training images of {name} (smallest class: {_smallest(labels)} "
            f"images): {error}"
        ) from error
    return np.sort(rest), np.sort(cut)


def group_cut(
    name: str,
    labels: np.ndarray,
    groups: np.ndarray,
    fraction: float,
    seed: int,
    what: str = "val",
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rest and of a ``what`` split of whole groups (no group in both).

    scikit-learn's StratifiedGroupKFold (``round(1 / fraction)`` folds, one fold is cut;
    stratified by :func:`strata`) when there are enough groups, else GroupShuffleSplit
    (``fraction`` of the groups, unstratified). Two groups at least are needed.
    """
    import warnings

    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    indices = np.arange(len(labels))
    count = len(np.unique(groups))
    if count < 2:
        raise UserError(
            f"cannot cut a {what} split ({what}_fraction={fraction:g}) of whole groups from the "
            f"training images of {name}: they belong to {count} group; at least 2 are needed"
        )
    folds = max(2, round(1.0 / fraction))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" warnings
        if count >= folds:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            rest, cut = next(splitter.split(indices, strata(labels), groups))
        else:
            shuffle = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            rest, cut = next(shuffle.split(indices, groups=groups))
    if len(cut) == 0 or len(rest) == 0:
        raise UserError(
            f"cannot cut a {what} split ({what}_fraction={fraction:g}) of whole groups from the "
            f"{count} groups of {name}'s training images; use more groups or another fraction"
        )
    return np.sort(rest), np.sort(cut)


def from_splits(
    name: str,
    train: SplitSet,
    test: SplitSet,
    classes: list[str],
    val_fraction: float,
    split_seed: int,
    val: SplitSet | None = None,
    stats_sample: int | None = None,
    task: str = MULTICLASS,
) -> DataSplits:
    """Splits from a train and a test set; a stratified validation split is cut when absent.

    Normalisation statistics come from the training split (all of it in memory, or a fixed
    sample of ``stats_sample`` images from files: read from the decode cache when it holds
    them, but never building it, so that a run on the DataLoader path decodes no more than
    the sample before its first step).
    """
    labels = train.labels.numpy()
    require_classes(name, labels, classes)
    if val is None:
        train_idx, val_idx = cut_split(name, labels, val_fraction, split_seed)
        train, val = train.subset(train_idx), train.subset(val_idx)
    mean, std = training_stats(train, split_seed, stats_sample)
    return DataSplits(name, train, val, test, classes, mean, std, task)


def training_stats(
    train: SplitSet, split_seed: int, stats_sample: int | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation statistics of a training split: all of it in memory, or a sample of
    ``stats_sample`` images (fixed by ``split_seed``) from files."""
    if train.in_memory:
        return channel_stats(train.images)  # type: ignore[attr-defined]
    count = min(len(train), stats_sample or len(train))
    pick = np.random.default_rng(split_seed).choice(len(train), count, replace=False)
    return channel_stats(train.subset(np.sort(pick)).materialize().images)


def from_arrays(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    options: PoolOptions,
) -> DataSplits:
    """Split uint8 (N, C, H, W) arrays as ``options`` say (stratified) and compute
    training-set statistics."""
    if len(images) == 0:
        raise UserError(f"dataset '{name}' has no images")
    train_idx, val_idx, test_idx = stratified_split(
        labels, options.val_fraction, options.test_fraction, options.split_seed
    )
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    target = torch.from_numpy(labels.astype(np.float32 if labels.ndim == 2 else np.int64))

    def subset(idx: np.ndarray) -> ImageSet:
        index = torch.from_numpy(idx)
        return ImageSet(tensor[index].contiguous(), target[index].contiguous())

    train = subset(train_idx)
    mean, std = channel_stats(train.images)
    task = MULTILABEL if labels.ndim == 2 else MULTICLASS
    return DataSplits(name, train, subset(val_idx), subset(test_idx), classes, mean, std, task)
