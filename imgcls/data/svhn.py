"""SVHN (cropped digits) from ``train_32x32.mat`` and ``test_32x32.mat`` in root (torchvision's layout).

Label 10 in the files is the digit 0, as in torchvision. ``extra=true`` adds the 531,131
"extra" training images from ``extra_32x32.mat``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from imgcls.base.errors import UserError, one_line
from imgcls.config.options.datasets import SvhnOptions
from imgcls.data.archives import download as run_download
from imgcls.data.archives import missing_files
from imgcls.data.splits import DataSplits, ImageSet, from_splits
from imgcls.registry import DATASETS


def read_mat(path: Path) -> ImageSet:
    """A .mat file's images (uint8 X of shape (32, 32, 3, N)) and labels (y, 1..10).

    SciPy's readers raise many kinds of errors for a damaged file (OSError, ValueError, its
    own MatReadError, zlib's), so any error while loading is one line naming the file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as error:
        raise UserError(f"cannot read SVHN file {path}: {one_line(error, typed=True)}") from error
    if "X" not in mat or "y" not in mat:
        raise UserError(f"{path} has no 'X' and 'y' arrays: not an SVHN .mat file")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or y.dtype.kind not in "iuf" or not np.isfinite(y).all():
        raise UserError(
            f"{path} holds X of type {x.dtype} and y of type {y.dtype}; expected uint8 images "
            "and numeric labels"
        )
    if (y != np.round(y)).any():
        raise UserError(f"{path} has labels that are not whole numbers; expected 1..10")
    y = y.astype(np.int64)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise UserError(
            f"{path} holds X of shape {x.shape}; expected (32, 32, 3, N) for {len(y)} labels"
        )
    y[y == 10] = 0
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise UserError(f"{path} has labels outside 1..10")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)  # (N, 3, H, W)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(y))


@DATASETS.register("svhn", SvhnOptions)
def svhn(options: SvhnOptions) -> DataSplits:
    """SVHN's 73,257 training (and 531,131 extra) and 26,032 test images."""
    root, download, extra = options.root, options.download, options.extra
    base = Path(root).expanduser()
    splits = ["train", "test", *(["extra"] if extra else [])]
    files = [f"{s}_32x32.mat" for s in splits]
    if download and not all((base / f).is_file() for f in files):
        from torchvision.datasets import SVHN

        for split in splits:
            run_download("svhn", lambda s=split: SVHN(str(base), split=s, download=True))
    if not all((base / f).is_file() for f in files):
        raise missing_files("svhn", root, [""], files)
    train = read_mat(base / "train_32x32.mat")
    if extra:
        more = read_mat(base / "extra_32x32.mat")
        train = ImageSet(
            torch.cat([train.images, more.images]), torch.cat([train.labels, more.labels])
        )
    test = read_mat(base / "test_32x32.mat")
    classes = [str(i) for i in range(10)]
    return from_splits("svhn", train, test, classes, options.val_fraction, options.split_seed)
