"""MNIST and Fashion-MNIST from their IDX files (raw or gzipped), as torchvision stores them.

Looked for in ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``), ``root/MNIST/`` and ``root``.
When ``root`` is not given (``null``, the default), the project's default root ``data`` is
searched that way first, then the system folder Debian's dataset packages install into:
``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``) and
``/usr/share/datasets/mnist/`` for MNIST. ``$IMGCLS_SYSTEM_DATASETS`` replaces
``/usr/share/datasets`` (tests point it at a temporary folder).
The files are parsed here rather than through torchvision's dataset classes, which check
MD5 sums and would reject any other copy; ``download=true`` uses torchvision's downloader.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import IdxOptions
from imgcls.data.archives import download as run_download
from imgcls.data.archives import find_folder, locate, missing_files
from imgcls.data.splits import DataSplits, ImageSet, from_splits
from imgcls.registry import DATASETS

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DEFAULT_ROOT = "data"  # the project's default root, searched first when dataset.root is null
SYSTEM_DATASETS = "/usr/share/datasets"  # Debian's dataset packages; $IMGCLS_SYSTEM_DATASETS wins
# The folder (under SYSTEM_DATASETS) and the Debian package of each dataset; no MNIST package
# exists yet, its folder follows the same convention.
SYSTEM_FOLDERS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (magic: two zero bytes, a type byte, the number of dimensions)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise UserError(f"cannot read IDX file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise UserError(
            f"{path} is truncated or corrupt: header says {shape}, "
            f"{len(data) - offset} bytes of data instead of {expected}"
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


def _load_pair(folder: Path, images_key: str, labels_key: str) -> ImageSet:
    images = read_idx(locate(folder, FILES[images_key]))  # type: ignore[arg-type]
    labels = read_idx(locate(folder, FILES[labels_key]))  # type: ignore[arg-type]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(
            f"IDX files in {folder} do not match: images {images.shape}, labels {labels.shape}"
        )
    tensor = torch.from_numpy(np.array(images, dtype=np.uint8)[:, None])  # a writable copy
    return ImageSet(tensor, torch.from_numpy(labels.astype(np.int64)))


def system_folder(name: str) -> Path:
    """Where Debian's package puts the dataset: ``/usr/share/datasets/<folder>``."""
    base = os.environ.get("IMGCLS_SYSTEM_DATASETS") or SYSTEM_DATASETS
    return Path(base) / SYSTEM_FOLDERS[name]


def load_idx_dataset(
    name: str,
    folder_name: str,
    classes: list[str],
    options: IdxOptions,
) -> DataSplits:
    """The splits from ``root``; when root is None, from ``data``, then the system folder."""
    root = options.root
    candidates = (f"{folder_name}/raw", folder_name, "")
    names = list(FILES.values())
    base = root or DEFAULT_ROOT
    system = [system_folder(name)] if root is None else []
    folder = find_folder(base, candidates, names)
    if folder is None and system:  # Debian's packages put the files in the folder itself
        folder = find_folder(str(system[0]), ("",), names)
    if folder is None and options.download:
        from torchvision import datasets

        cls = datasets.MNIST if folder_name == "MNIST" else datasets.FashionMNIST
        target = str(Path(base).expanduser())
        for train in (True, False):
            run_download(name, lambda t=train: cls(target, train=t, download=True))
        folder = find_folder(base, candidates, names)
    if folder is None:
        package = PACKAGES.get(name)
        raise missing_files(
            name,
            base,
            candidates,
            [f"{n}[.gz]" for n in names],
            also=system,
            install=f"apt-get install {package}" if package else None,
        )
    train = _load_pair(folder, "train_images", "train_labels")
    test = _load_pair(folder, "test_images", "test_labels")
    for split in (train, test):
        if len(split) and int(split.labels.max()) >= len(classes):
            raise UserError(
                f"{name} labels in {folder} go up to {int(split.labels.max())}; "
                f"expected 0..{len(classes) - 1}"
            )
    return from_splits(name, train, test, classes, options.val_fraction, options.split_seed)


@DATASETS.register("mnist", IdxOptions)
def mnist(options: IdxOptions) -> DataSplits:
    """MNIST's 60,000 training and 10,000 test digits."""
    classes = [str(i) for i in range(10)]
    return load_idx_dataset("mnist", "MNIST", classes, options)


@DATASETS.register("fashion_mnist", IdxOptions)
def fashion_mnist(options: IdxOptions) -> DataSplits:
    """Fashion-MNIST's 60,000 training and 10,000 test images."""
    return load_idx_dataset("fashion_mnist", "FashionMNIST", FASHION_CLASSES, options)
