"""Small files in each real on-disk format, written the way the original datasets are."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np


def _images(n: int, shape: tuple[int, ...], labels: np.ndarray, seed: int) -> np.ndarray:
    """Noise plus a class-dependent brightness, so a tiny model has something to learn."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 80, size=(n, *shape))
    return np.clip(base + labels.reshape(-1, *([1] * len(shape))) * 15, 0, 255).astype(np.uint8)


def _labels(n: int, classes: int, seed: int) -> np.ndarray:
    return (np.arange(n) % classes)[np.random.default_rng(seed).permutation(n)]


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(root: Path, folder: str = "MNIST/raw", gz: bool = False, n=(100, 20)) -> Path:
    """MNIST-style IDX files (train-images-idx3-ubyte, ...), optionally gzipped."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", n[0], 0), ("t10k", n[1], 1)):
        labels = _labels(count, 10, seed)
        for kind, array in (
            ("images-idx3-ubyte", _images(count, (28, 28), labels, seed)),
            ("labels-idx1-ubyte", labels),
        ):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}"
            if gz:
                (target / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (target / name).write_bytes(data)
    return root


def write_cifar10(root: Path, per_batch: int = 20, test: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    for i, (name, count) in enumerate(
        [*((f"data_batch_{b}", per_batch) for b in range(1, 6)), ("test_batch", test)]
    ):
        labels = _labels(count, 10, i)
        data = _images(count, (3072,), labels, i)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": [f"{j}.png".encode() for j in range(count)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_cifar100(root: Path, train: int = 120, test: int = 40) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count, seed in (("train", train, 0), ("test", test, 1)):
        fine = _labels(count, 100, seed) % 4  # four fine classes present of 100
        coarse = fine % 2
        data = _images(count, (3072,), fine, seed)
        batch = {
            "filenames": [f"{j}.png" for j in range(count)],
            "fine_labels": fine.tolist(),
            "coarse_labels": coarse.tolist(),
            "data": data,
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {
        "fine_label_names": [f"fine{i}" for i in range(100)],
        "coarse_label_names": [f"coarse{i}" for i in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return root


def write_svhn(root: Path, n=(100, 20)) -> Path:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", n[0], 0), ("test", n[1], 1)):
        labels = _labels(count, 10, seed)
        x = _images(count, (32, 32, 3), labels, seed).transpose(1, 2, 3, 0)  # (32, 32, 3, N)
        y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})
    return root


def write_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 8) -> Path:
    """PNG and JPEG files of mixed sizes and modes (L, RGB, RGBA, P) in class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    modes = ("RGB", "L", "RGBA", "P")
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = int(rng.integers(10, 40)), int(rng.integers(10, 40))
            pixels = np.clip(rng.integers(0, 80, (h, w, 3)) + 60 * k, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels).convert(modes[i % len(modes)])
            if i % 2 == 0 and image.mode in ("RGB", "L"):
                image.save(root / name / f"{i}.jpg", quality=90)
            else:
                image.save(root / name / f"{i}.png")
    return root


def write_label_table(root: Path, classes=("cat", "dog", "fox"), per_class: int = 8) -> Path:
    """A folder of images (``write_folder``'s) and ``labels.csv`` listing them, paths relative
    to the table; returns the table."""
    write_folder(root / "images", classes, per_class)
    rows = [
        f"images/{p.parent.name}/{p.name},{p.parent.name}"
        for p in sorted((root / "images").rglob("*.*"))
    ]
    table = root / "labels.csv"
    table.write_text("image,label\n" + "\n".join(rows) + "\n")
    return table


@functools.cache
def fmnist_tables():
    """benchmarks/fmnist_tables.py as a module (benchmarks/ is no package)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fmnist_tables.py"
    spec = importlib.util.spec_from_file_location("fmnist_tables", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_fmnist_table(root: Path, kind: str) -> Path:
    """A small Fashion-MNIST-LT (``lt``, imbalance 10) or mosaic (``mosaic``) label table made
    by benchmarks/fmnist_tables.py from fabricated IDX files, for the recipes over them
    (experiment=fmnist_lt, fmnist_mosaic); returns the table."""
    source = write_idx(root / "idx", "fashion-mnist", n=(1000, 60)) / "fashion-mnist"
    target = root / kind
    if kind == "lt":
        fmnist_tables().make_lt(source, target, seed=0, imbalance=10)
    else:
        fmnist_tables().make_mosaic(source, target, seed=0, train=64, val=16, test=20)
    return target / "labels.csv"


FABRICATORS = {
    "mnist": lambda root: write_idx(root, "MNIST/raw"),
    "fashion_mnist": lambda root: write_idx(root, "FashionMNIST/raw", gz=True),
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "svhn": write_svhn,
    "folder": write_folder,
}


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says ``side`` x ``side`` pixels (a decompression bomb to Pillow),
    in under 100 bytes: Pillow refuses it from the header, before decoding anything."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


def gray_levels(classes: int = 2, per_class: int = 12, side: int = 8, seed: int = 0) -> np.ndarray:
    """16-bit grayscale pictures (classes*per_class, side, side), dark as scientific images
    often are (every value under 9,000 of 65,535), one brightness level per class."""
    rng = np.random.default_rng(seed)
    levels = np.repeat(np.arange(classes) * 3000 + 1500, per_class)
    noise = rng.integers(0, 2500, size=(len(levels), side, side))
    return (levels[:, None, None] + noise).astype(np.uint16)


def write_gray_folder(
    root: Path, bits: int = 16, classes: int = 2, per_class: int = 12, side: int = 8
) -> Path:
    """A folder dataset of :func:`gray_levels` pictures saved as 16-bit PNGs (``bits=16``),
    32-bit integer TIFFs (``bits=32``), or their exact 8-bit copies (``bits=8``: each value
    divided by 257 and rounded, the rule imgcls decodes deeper images by)."""
    from PIL import Image

    pictures = gray_levels(classes, per_class, side)
    for i, picture in enumerate(pictures):
        folder = root / f"class{i // per_class}"
        folder.mkdir(parents=True, exist_ok=True)
        if bits == 16:
            Image.fromarray(picture).save(folder / f"{i}.png")
        elif bits == 32:
            Image.fromarray(picture.astype(np.int32)).save(folder / f"{i}.tif")
        else:
            eight = np.rint(picture / 257).astype(np.uint8)
            Image.fromarray(eight).save(folder / f"{i}.png")
    return root


def gzip_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    """One gzipped IDX file holding ``array`` with the given type code (0x08 unsigned byte,
    0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), big-endian."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = np.ascontiguousarray(array, dtype=dtypes[type_code]).tobytes()
    path.write_bytes(gzip.compress(header + data))
    return path
