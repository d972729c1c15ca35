"""CIFAR-10 and CIFAR-100 from the python pickles (``cifar-10-batches-py/``, ``cifar-100-python/``).

The pickles are read with an unpickler that only builds NumPy arrays, dicts, lists and
strings, so a doctored file cannot run code. ``download=true`` uses torchvision's downloader.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import Cifar10Options, Cifar100Options
from imgcls.data.archives import download as run_download
from imgcls.data.archives import missing_files
from imgcls.data.splits import DataSplits, ImageSet, from_splits
from imgcls.registry import DATASETS

SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = _SafeUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise UserError(f"cannot read CIFAR pickle {path}: {error}") from error
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a CIFAR batch (expected a dict, got {type(data).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _batches(path: Path, files: list[str], label_key: str) -> ImageSet:
    images, labels = [], []
    for name in files:
        batch = read_pickle(path / name)
        if "data" not in batch or label_key not in batch:
            raise UserError(f"{path / name} has no '{label_key}' or 'data': not a CIFAR batch file")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(batch[label_key]):
            raise UserError(f"{path / name} holds data of shape {data.shape}; expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return ImageSet(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
    )


def _folder(root: str, sub: str, files: list[str], name: str, download: bool, fetch) -> Path:
    folder = Path(root).expanduser() / sub
    if not all((folder / f).is_file() for f in files) and download:
        run_download(name, fetch)
    if not all((folder / f).is_file() for f in files):
        raise missing_files(name, root, [sub], files)
    return folder


def _names(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]


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
    classes = _names(read_pickle(folder / "batches.meta").get("label_names", []))
    train = _batches(folder, train_files, "labels")
    test = _batches(folder, ["test_batch"], "labels")
    _check_labels("cifar10", folder, classes, train, test)
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
    classes = _names(read_pickle(folder / "meta").get(f"{labels}_label_names", []))
    train = _batches(folder, ["train"], f"{labels}_labels")
    test = _batches(folder, ["test"], f"{labels}_labels")
    _check_labels("cifar100", folder, classes, train, test)
    return from_splits("cifar100", train, test, classes, options.val_fraction, options.split_seed)


def _check_labels(name: str, folder: Path, classes: list[str], *splits: ImageSet) -> None:
    top = max(int(s.labels.max()) for s in splits if len(s))
    if top >= len(classes):
        raise UserError(
            f"{name} labels in {folder} go up to {top} but the meta file names {len(classes)} classes"
        )
