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
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from imgcls.base.errors import UserError, one_line
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
# Deflate cannot expand data more than about 1032 times: a .gz claiming more is damaged.
GZIP_RATIO = 1100
# MNIST and Fashion-MNIST hold 47 MB each; a header asking for more than this is not theirs.
MAX_DATA_BYTES = 2 << 30
CHUNK = 16 << 20  # data is read in pieces, so memory grows only with what is really there
DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (magic: two zero bytes, a type byte, the number of dimensions).

    Nothing larger than the file can hold is read or allocated: a raw file's data must be
    exactly what its header says, a gzipped one can at most hold ``GZIP_RATIO`` times its
    own size (deflate's limit), neither more than ``MAX_DATA_BYTES``, so a forged header or
    a gzip bomb is refused unread; the data is read in ``CHUNK`` pieces, so a header that
    lies within those limits costs only the bytes really there. Every failure names the file."""
    try:
        size = path.stat().st_size
        with _open(path) as handle:
            header = handle.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in DTYPES:
                raise UserError(f"{path} is not an IDX file (bad magic number)")
            ndim = header[3]
            dims = handle.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise UserError(f"{path} is truncated: its header names {ndim} dimensions")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(DTYPES[header[2]])
            expected = math.prod(shape) * dtype.itemsize
            room = size * GZIP_RATIO if path.suffix == ".gz" else size - 4 - 4 * ndim
            if expected > min(room, MAX_DATA_BYTES):
                raise UserError(
                    f"{path} is truncated or corrupt: its header says {shape} "
                    f"({expected:,} bytes of data), more than its {size:,} bytes can hold"
                )
            data = _read_at_most(handle, expected + 1)
    except UserError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"cannot read IDX file {path}: {one_line(error)}") from error
    if len(data) != expected:
        found = f"{len(data)}" if len(data) < expected else "more"
        raise UserError(
            f"{path} is truncated or corrupt: header says {shape}, "
            f"{found} bytes of data instead of {expected}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _read_at_most(handle: BinaryIO, count: int) -> bytearray:
    data = bytearray()
    while len(data) < count:
        chunk = handle.read(min(CHUNK, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[return-value]


def _load_pair(folder: Path, images_key: str, labels_key: str, classes: list[str]) -> ImageSet:
    """An images file and its labels file, checked: (N, H, W) bytes and N labels, each an
    integer naming one of ``classes``."""
    images_file = locate(folder, FILES[images_key])
    labels_file = locate(folder, FILES[labels_key])
    images = read_idx(images_file)  # type: ignore[arg-type]
    labels = read_idx(labels_file)  # type: ignore[arg-type]
    if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape[1:]:
        raise UserError(
            f"{images_file} holds {images.dtype} data of shape {images.shape}: "
            "expected unsigned bytes of shape (N, height, width)"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(
            f"{labels_file} holds {labels.dtype} data of shape {labels.shape}: "
            "expected integers of shape (N,)"
        )
    if len(images) == 0:
        raise UserError(f"{images_file} holds no images: expected N > 0 images of (height, width)")
    if len(images) != len(labels):
        raise UserError(
            f"IDX files in {folder} do not match: images {images.shape}, labels {labels.shape}"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise UserError(
            f"{labels_file} has labels from {int(labels.min())} to {int(labels.max())}; "
            f"expected 0..{len(classes) - 1}"
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
    train = _load_pair(folder, "train_images", "train_labels", classes)
    test = _load_pair(folder, "test_images", "test_labels", classes)
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
