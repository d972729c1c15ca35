"""Options of the datasets (``conf/dataset/``); built by the modules of :mod:`imgcls.data`.

Datasets with an official test split (MNIST, CIFAR, SVHN) cut only a validation split from
their training images; the others split one pool three ways (``test_fraction`` too). Both
splits are stratified and fixed by ``split_seed``.

``folds=K fold=i`` (any dataset) turns the training pool (train + validation) into K folds
and validates on fold ``i`` (:mod:`imgcls.data.folds`); the test split stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing generics)

from imgcls.base.errors import OptionError
from imgcls.config.options.base import Options, at_least, choice, require, schema, seed


def fraction(key: str, value: float) -> None:
    """A split's share of the images: in (0, 1)."""
    require(0.0 < value < 1.0, key, value, "it must be between 0 and 1")


def check_folds(folds: int, fold: int) -> None:
    """``folds`` is 0 (off) or K >= 2; ``fold`` is one of 0..K-1 (0 when folds are off)."""
    require(folds == 0 or folds >= 2, "folds", folds, "use 0 (no folds) or K >= 2 folds")
    if folds == 0:
        require(fold == 0, "fold", fold, "set dataset.folds=K (K >= 2) to choose a fold")
    else:
        require(0 <= fold < folds, "fold", fold, f"with folds={folds} use 0..{folds - 1}")


@dataclass
class DatasetOptions(Options):
    """A validation split of ``val_fraction`` of the training images; with ``folds=K`` the
    validation split is fold ``fold`` of the training pool (train + validation) instead."""

    val_fraction: float = 0.1
    split_seed: int = 0
    folds: int = 0
    fold: int = 0

    def __post_init__(self) -> None:
        fraction("val_fraction", self.val_fraction)
        seed("split_seed", self.split_seed)
        check_folds(self.folds, self.fold)


@dataclass
class PoolOptions(DatasetOptions):
    """One pool of images split into train, validation and test."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        fraction("test_fraction", self.test_fraction)
        total = self.val_fraction + self.test_fraction
        if total >= 1.0:
            raise OptionError(
                f"val_fraction + test_fraction = {total:g} leaves no training data: "
                "keep the sum below 1"
            )


@dataclass
class FilesOptions(DatasetOptions):
    """Files under ``root``; ``download=true`` fetches them when missing (online only)."""

    root: str = "data"
    download: bool = False


@schema("dataset", "digits")
@dataclass
class DigitsOptions(PoolOptions):
    """scikit-learn's 8x8 digits."""


@schema("dataset", "digits_shifted")
@dataclass
class DigitsShiftedOptions(PoolOptions):
    """The digits rescaled about the centre by ``scale``, optionally inverted, with Gaussian
    ``noise`` (fixed by ``seed``)."""

    invert: bool = False
    noise: float = 0.3
    scale: float = 0.75
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("noise", self.noise, 0)
        seed("seed", self.seed)
        require(0.25 <= self.scale <= 4.0, "scale", self.scale, "use a factor in [0.25, 4]")


@schema("dataset", "synthetic")
@dataclass
class SyntheticOptions(PoolOptions):
    """Procedural patterns: ``num_samples`` images of ``channels`` x ``image_size``^2."""

    num_classes: int = 5
    num_samples: int = 2000
    image_size: int = 32
    channels: int = 3
    noise: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.num_classes >= 2, "num_classes", self.num_classes, "a classifier needs at least 2"
        )
        at_least("image_size", self.image_size, 4)
        at_least("channels", self.channels, 1)
        at_least("noise", self.noise, 0)
        seed("seed", self.seed)
        minimum = self.num_classes * 3
        if self.num_samples < minimum:
            raise OptionError(
                f"num_samples={self.num_samples} is too small: {self.num_classes} classes need "
                f"at least {minimum} images for a train/val/test split"
            )


@dataclass
class ImageFileOptions(PoolOptions):
    """Image files of any size and mode, resized to ``image_size`` with ``channels`` 1 or 3;
    normalisation statistics from ``stats_images`` training images."""

    image_size: int = 32
    channels: int = 3
    stats_images: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("image_size", self.image_size, 4)
        ok = self.channels in (1, 3)
        require(ok, "channels", self.channels, "use 1 (grayscale) or 3 (RGB)")
        at_least("stats_images", self.stats_images, 1)


@schema("dataset", "folder")
@dataclass
class FolderOptions(ImageFileOptions):
    """Images in ``root/<class>/`` (or ``root/train|val|test/<class>/``)."""

    root: str = "data/images"


SPLITS = ("train", "val", "test")


class TableTask(str, Enum):
    """One label per image, several, or ``auto``: several exactly when ``label_delim`` is set."""

    auto = "auto"
    multiclass = "multiclass"
    multilabel = "multilabel"


@schema("dataset", "table")
@dataclass
class TableOptions(ImageFileOptions):
    """A CSV or TSV label table at ``path``: a row per image, its path (relative to ``root``,
    by default the table's folder) in ``image_col`` and its label(s) in ``label_col``.

    ``label_delim`` splits a cell into several labels; ``split_col`` fixes each image's split
    (its values mapped to train, val and test by ``split_values``; null: the values are
    train, val and test); ``group_col`` keeps the
    images of one group (a patient, a site) in one split; ``classes`` fixes the label order
    (default: the labels found, sorted). ``path`` is required when the dataset is built, so
    that the config file validates without one.
    """

    path: Optional[str] = None  # noqa: UP045
    root: Optional[str] = None  # noqa: UP045
    image_col: str = "image"
    label_col: str = "label"
    label_delim: Optional[str] = None  # noqa: UP045
    split_col: Optional[str] = None  # noqa: UP045
    split_values: Any = None  # a mapping {value: split}; Any: OmegaConf cannot merge into None
    group_col: Optional[str] = None  # noqa: UP045
    classes: Optional[List[str]] = None  # noqa: UP006, UP045
    task: TableTask = TableTask.auto

    def __post_init__(self) -> None:
        super().__post_init__()
        self.task = choice(TableTask, "task", self.task)
        require(self.label_delim != "", "label_delim", "''", "use null or a separator like ';'")
        for key in ("image_col", "label_col", "split_col", "group_col"):
            value = getattr(self, key)
            require(value is None or value.strip() != "", key, repr(value), "name a column")
        if self.split_values is not None:
            values = self.split_values
            ok = isinstance(values, Mapping) and bool(values)
            ok = ok and all(str(v) in SPLITS for v in values.values())
            require(
                ok,
                "split_values",
                values,
                f"map the split column's values to {', '.join(SPLITS)}",
            )
        if self.classes is not None:
            names = [str(c) for c in self.classes]
            twice = sorted({c for c in names if names.count(c) > 1})
            require(
                len(names) >= 2 and not twice,
                "classes",
                names,
                f"list each class once ({', '.join(twice)} twice)"
                if twice
                else "list at least 2 classes, or null for the labels found",
            )

    @property
    def multilabel(self) -> bool:
        """Whether an image may carry several labels (``task``, or ``auto`` with a delimiter)."""
        if self.task is TableTask.auto:
            return self.label_delim is not None
        return self.task is TableTask.multilabel


@schema("dataset", "cifar10")
@dataclass
class Cifar10Options(FilesOptions):
    """CIFAR-10 from ``root/cifar-10-batches-py``."""


class CifarLabels(str, Enum):
    """CIFAR-100's 100 fine classes or 20 coarse superclasses."""

    fine = "fine"
    coarse = "coarse"


@schema("dataset", "cifar100")
@dataclass
class Cifar100Options(FilesOptions):
    """CIFAR-100 from ``root/cifar-100-python``."""

    labels: CifarLabels = CifarLabels.fine

    def __post_init__(self) -> None:
        super().__post_init__()
        self.labels = choice(CifarLabels, "labels", self.labels)


@schema("dataset", "svhn")
@dataclass
class SvhnOptions(FilesOptions):
    """SVHN from ``root/*_32x32.mat``; ``extra`` adds the 531k extra training images."""

    extra: bool = False


@schema("dataset", "mnist", "fashion_mnist")
@dataclass
class IdxOptions(FilesOptions):
    """MNIST-like IDX files; ``root=null`` looks in ``data/``, then the system folder."""

    root: Optional[str] = None  # noqa: UP045
