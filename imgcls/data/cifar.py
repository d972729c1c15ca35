"""CIFAR-10 and CIFAR-100 from the python pickles (``cifar-10-batches-py/``, ``cifar-100-python/``).

The pickles are read by :mod:`imgcls.data.safe_pickle`, which only builds NumPy arrays,
dicts, lists and strings, so a doctored file cannot run code or ask for more memory than its
size justifies; data, labels and class names are checked before use. ``download=true`` uses
torchvision's downloader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import Cifar10Options, Cifar100Options
from imgcls.data import safe_pickle
from imgcls.data.archives import download as run_download
from imgcls.data.archives import missing_files
from imgcls.data.splits import DataSplits, ImageSet, from_splits
from imgcls.registry import DATASETS


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with string keys, read by :mod:`imgcls.data.safe_pickle`
    (nothing runs, nothing is allocated beyond the file's size); any failure is one line
    naming the file."""
    try:
        loaded = safe_pickle.load(path)
    except safe_pickle.UnsafePickleError as error:
        raise UserError(f"cannot read CIFAR pickle {path}: {error}") from error
    if not isinstance(loaded, dict) or not all(isinstance(k, str | bytes) for k in loaded):
        raise UserError(
            f"{path} is not a CIFAR batch (expected a dict, got {type(loaded).__name__})"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in loaded.items()}


def _batches(path: Path, files: list[str], label_key: str, classes: list[str]) -> ImageSet:
    images, labels = [], []
    for name in files:
        file = path / name
        batch = read_pickle(file)
        if "data" not in batch or label_key not in batch:
            raise UserError(f"{file} has no '{label_key}' or 'data': not a CIFAR batch file")
        data, targets = batch["data"], batch[label_key]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
            raise UserError(f"{file} holds data of type {kind}; expected a uint8 array")
        if data.ndim != 2 or data.shape[1] != 3072:
            raise UserError(f"{file} holds data of shape {data.shape}; expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(_labels(file, label_key, targets, len(data), len(classes)))
    return ImageSet(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
    )


def _labels(file: Path, key: str, values: Any, count: int, classes: int) -> np.ndarray:
    """The batch's labels: a list of ``count`` integers in 0..classes-1, else one line."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iu":
        values = values.tolist()
    if not isinstance(values, list) or len(values) != count:
        found = len(values) if isinstance(values, list) else f"a {type(values).__name__} of"
        raise UserError(
            f"{file} has {found} '{key}' for {count} images; expected a list of {count} integers"
        )
    bad = next((v for v in values if type(v) is not int or not 0 <= v < classes), None)
    if bad is not None or any(v is None for v in values):
        raise UserError(
            f"{file} has a label {_shown(bad)} in '{key}'; expected integers 0..{classes - 1}"
        )
    return np.asarray(values, dtype=np.int64)


def _shown(value: Any) -> str:
    """A label for a message: small integers as they are, anything else by its type."""
    if type(value) is int:
        return str(value) if abs(value) < 10**12 else "too large for 64 bits"
    return f"of type {type(value).__name__}"


def _folder(root: str, sub: str, files: list[str], name: str, download: bool, fetch) -> Path:
    folder = Path(root).expanduser() / sub
    if not all((folder / f).is_file() for f in files) and download:
        run_download(name, fetch)
    if not all((folder / f).is_file() for f in files):
        raise missing_files(name, root, [sub], files)
    return folder


def _classes(file: Path, key: str) -> list[str]:
    """The class names in a meta file: a non-empty list of strings (bytes in CIFAR-10)."""
    value = read_pickle(file).get(key)
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str | bytes) for v in value)
    ):
        raise UserError(f"{file} has no list of class names under '{key}': not a CIFAR meta file")
    return [v.decode("latin1") if isinstance(v, bytes) else v for v in value]


@DATASETS.register("cifar10", Cifar10Options)
def cifar10(options: Cifar10Options) -> DataSplits:
    """CIFAR-10's 50,000 training and 10,000 test images."""
    root = options.root
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    files = [*train_files, "test_batch", "batches.meta"]

    def fetch() -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(Path(root).expanduser()), download=True)

    folder = _folder(root, "cifar-10-batches-py", files, "cifar10", options.download, fetch)
    classes = _classes(folder / "batches.meta", "label_names")
    train = _batches(folder, train_files, "labels", classes)
    test = _batches(folder, ["test_batch"], "labels", classes)
    return from_splits("cifar10", train, test, classes, options.val_fraction, options.split_seed)


@DATASETS.register("cifar100", Cifar100Options)
def cifar100(options: Cifar100Options) -> DataSplits:
    """CIFAR-100's 50,000 training and 10,000 test images, fine or coarse labels."""
    root, labels = options.root, options.labels.value

    def fetch() -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(Path(root).expanduser()), download=True)

    folder = _folder(
        root, "cifar-100-python", ["train", "test", "meta"], "cifar100", options.download, fetch
    )
    classes = _classes(folder / "meta", f"{labels}_label_names")
    train = _batches(folder, ["train"], f"{labels}_labels", classes)
    test = _batches(folder, ["test"], f"{labels}_labels", classes)
    return from_splits("cifar100", train, test, classes, options.val_fraction, options.split_seed)
