"""Two label-table datasets of PNG files made from the real Fashion-MNIST, for ``dataset=table``.

    python benchmarks/fmnist_tables.py lt     --out DIR [--seed 0] [--imbalance 100] [--force]
    python benchmarks/fmnist_tables.py mosaic --out DIR [--seed 0] [--train 27000] [--val 3000]
                                              [--test 10000]

The IDX files are read with imgcls's own reader (``imgcls.data.idx``) from the folder
Debian's package installs (``apt-get install dataset-fashion-mnist``:
``/usr/share/datasets/fashion-mnist``, ``$IMGCLS_SYSTEM_DATASETS`` replaces
``/usr/share/datasets``) or from ``--source``.

``lt`` — Fashion-MNIST-LT, made as CIFAR-10-LT is (Cui et al. 2019, Cao et al. 2019): class
``c`` (in class index order, 0 = T-shirt/top the most frequent) keeps
``n_c = int(n_max * (1 / imbalance) ** (c / (C - 1)))`` training images, chosen at random
with ``--seed``; ``n_max`` is the smallest class's count, which for the balanced
Fashion-MNIST is every class's 6,000. Imbalance factor 100 gives 6,000, 3,596, 2,156, 1,292,
774, 464, 278, 166, 100 and 60: 14,886 images (the formula gives CIFAR-10-LT's published
5,000 ... 50 from 5,000). The test split stays balanced: all 10,000 test images.
``labels.csv`` has the columns ``image,label,split`` (``split`` is ``train`` or ``test``;
imgcls cuts its validation split from ``train``, stratified by class, with
``dataset.val_fraction``, so a remedy is chosen on validation, never on test). Files are
named by their index in the original split (``train/00042.png`` is training image 42).

``mosaic`` — 2x2 mosaics of 28x28 items, 56x56 grayscale: each tile is a random image, the
label set is the distinct classes present (1 to 4 labels, ``|``-separated). 30,000 mosaics
come from the 60,000 training images, each image used twice: 27,000 training mosaics
(``--train``) and 3,000 validation mosaics (``--val``, split ``val``) built from a held-out
tenth of the training images (``val / (train + val)`` of them), so validation never sees an
image that a training mosaic holds (a validation split cut from the training mosaics would:
they share source images, and its mAP would flatter the model). 10,000 test mosaics
(``--test``, as many as Fashion-MNIST's own test split) come only from the 10,000 test
images, each used four times. Tiles are drawn as consecutive fours of shuffled passes over
a split's images, so every image is used equally often and, as the pool sizes are multiples
of 4, no image appears twice in one mosaic. ``labels.csv`` has ``image,labels,split``;
``tiles.csv`` names each mosaic's four source images (top-left, top-right, bottom-left,
bottom-right: their indices in Fashion-MNIST's own training or test split), for provenance.

Both are deterministic for a seed (the same seed writes the same bytes). The files are written
into a temporary folder beside ``--out`` and moved into place when complete, so an interrupted
run leaves no half-made dataset; an existing non-empty ``--out`` is refused unless ``--force``
(which replaces it). PNGs are written by a thread pool at zlib level 1. Prints the class
counts (``lt``) or the label statistics (``mosaic``) and how long writing took.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from imgcls.base.errors import UserError
from imgcls.data import idx
from imgcls.data.archives import locate

CLASSES = idx.FASHION_CLASSES
TILE = 28
GRID = 2  # tiles per side
DELIM = "|"
WRITERS = 8  # threads: zlib releases the GIL while it compresses


def load_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of ``split`` (train or test)."""
    prefix = "train" if split == "train" else "test"
    arrays = []
    for kind in ("images", "labels"):
        name = idx.FILES[f"{prefix}_{kind}"]
        path = locate(source, name)
        if path is None:
            raise UserError(
                f"no {name}[.gz] in {source}: install Debian's dataset-fashion-mnist "
                "or pass --source FOLDER"
            )
        arrays.append(idx.read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or images.shape[1:] != (TILE, TILE) or len(images) != len(labels):
        raise UserError(
            f"{source} holds images {images.shape} and labels {labels.shape}: "
            f"expected (N, {TILE}, {TILE}) and (N,)"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise UserError(f"{source} has labels outside 0..{len(CLASSES) - 1}")
    return np.asarray(images, dtype=np.uint8), labels.astype(np.int64)


def long_tail_counts(n_max: int, classes: int, imbalance: float) -> list[int]:
    """The exponential profile of CIFAR-10-LT: ``int(n_max * (1/imbalance)^(c/(C-1)))``."""
    return [int(n_max * (1.0 / imbalance) ** (c / (classes - 1.0))) for c in range(classes)]


def long_tail_indices(labels: np.ndarray, imbalance: float, seed: int) -> np.ndarray:
    """Sorted indices of the images kept: ``n_c`` drawn at random from each class ``c``."""
    classes = len(CLASSES)
    available = np.bincount(labels, minlength=classes)
    counts = long_tail_counts(int(available.min()), classes, imbalance)
    if min(counts) < 1:
        raise UserError(
            f"imbalance {imbalance} leaves a class without images "
            f"({available.min()} per class at most): use a smaller --imbalance"
        )
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(counts)]
    return np.sort(np.concatenate(kept))


def mosaic_tiles(pool: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 4) indices into a pool of ``pool`` images: consecutive fours of shuffled passes,
    so each image is used equally often (give or take one)."""
    need = count * GRID * GRID
    passes = -(-need // pool)
    stream = np.concatenate([rng.permutation(pool) for _ in range(passes)])
    return stream[:need].reshape(count, GRID * GRID)


def assemble(images: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """(count, 56, 56) mosaics: tile k of a row goes to grid cell (k // 2, k % 2)."""
    picked = images[tiles].reshape(len(tiles), GRID, GRID, TILE, TILE)
    return picked.transpose(0, 1, 3, 2, 4).reshape(len(tiles), GRID * TILE, GRID * TILE)


def label_sets(labels: np.ndarray, tiles: np.ndarray) -> list[list[int]]:
    """The distinct classes of each mosaic's tiles, in class order."""
    return [sorted({int(c) for c in row}) for row in labels[tiles]]


def write_pngs(folder: Path, names: Sequence[str], images: np.ndarray) -> None:
    """One grayscale PNG per image, zlib level 1 (fast; these files are read, not archived)."""
    folder.mkdir(parents=True, exist_ok=True)

    def save(i: int) -> None:
        Image.fromarray(images[i]).save(folder / names[i], compress_level=1)

    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in pool.map(save, range(len(names)), chunksize=256):
            pass


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_lt(source: Path, target: Path, seed: int, imbalance: float = 100.0) -> list[int]:
    """Fashion-MNIST-LT into ``target``; returns the training count of each class."""
    train_images, train_labels = load_split(source, "train")
    test_images, test_labels = load_split(source, "test")
    kept = long_tail_indices(train_labels, imbalance, seed)
    rows = []
    for split, images, labels, chosen in (
        ("train", train_images, train_labels, kept),
        ("test", test_images, test_labels, np.arange(len(test_labels))),
    ):
        width = len(str(len(labels) - 1))
        names = [f"{i:0{width}d}.png" for i in chosen]
        write_pngs(target / split, names, images[chosen])
        rows += [
            (f"{split}/{n}", CLASSES[labels[i]], split) for n, i in zip(names, chosen, strict=True)
        ]
    write_csv(target / "labels.csv", ("image", "label", "split"), rows)
    return np.bincount(train_labels[kept], minlength=len(CLASSES)).tolist()


def mosaic_pools(
    train_images: int, test_images: int, train: int, val: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The source images of each split's mosaics (indices into Fashion-MNIST's own splits):
    validation mosaics get their own share of the training images, ``val / (train + val)``,
    so that no training mosaic holds an image a validation mosaic holds."""
    held = rng.permutation(train_images)
    cut = round(train_images * val / (train + val))
    pools = {"train": np.sort(held[cut:]), "val": np.sort(held[:cut])}
    pools["test"] = np.arange(test_images)
    return {split: pool for split, pool in pools.items() if len(pool)}


def make_mosaic(
    source: Path,
    target: Path,
    seed: int,
    train: int = 27_000,
    val: int = 3_000,
    test: int = 10_000,
) -> dict[str, list[list[int]]]:
    """Mosaics into ``target``; returns each split's label sets (class indices)."""
    rng = np.random.default_rng(seed)
    splits = {"train": load_split(source, "train"), "test": load_split(source, "test")}
    counts = {"train": train, "val": val, "test": test}
    pools = mosaic_pools(len(splits["train"][1]), len(splits["test"][1]), train, val, rng)
    rows, provenance, sets = [], [], {}
    for split, pool in pools.items():
        images, labels = splits["test" if split == "test" else "train"]
        count = counts[split]
        tiles = pool[mosaic_tiles(len(pool), count, rng)]
        names = [f"{i:0{len(str(count - 1))}d}.png" for i in range(count)]
        write_pngs(target / split, names, assemble(images, tiles))
        sets[split] = label_sets(labels, tiles)
        for name, row, classes in zip(names, tiles, sets[split], strict=True):
            rows.append((f"{split}/{name}", DELIM.join(CLASSES[c] for c in classes), split))
            provenance.append((f"{split}/{name}", split, *row.tolist()))
    write_csv(target / "labels.csv", ("image", "labels", "split"), rows)
    header = ("image", "split", "top_left", "top_right", "bottom_left", "bottom_right")
    write_csv(target / "tiles.csv", header, provenance)
    return sets


def claim(out: Path, force: bool) -> Path:
    """A fresh temporary folder beside ``out``; refuses a non-empty ``out`` without force."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} is not empty: choose another folder or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def publish(work: Path, out: Path) -> None:
    """Moves the finished folder to ``out``, replacing what was there."""
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)


def report_lt(counts: list[int]) -> None:
    for c, n in enumerate(counts):
        print(f"  {c} {CLASSES[c]:<12} {n:>6}")
    print(f"train images: {sum(counts)} (imbalance {counts[0] / counts[-1]:.0f})")


def report_mosaic(sets: dict[str, list[list[int]]]) -> None:
    for split, rows in sets.items():
        sizes = np.bincount([len(r) for r in rows], minlength=GRID * GRID + 1)[1:]
        present = np.bincount([c for r in rows for c in r], minlength=len(CLASSES))
        print(
            f"{split}: {len(rows)} mosaics; with 1..4 labels: {sizes.tolist()}; "
            f"mosaics per class: {present.tolist()}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("lt", "mosaic"))
    parser.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, help="folder of the IDX files (default: Debian's)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--imbalance", type=float, default=100.0, help="lt: n_max / n_min")
    parser.add_argument("--train", type=int, default=27_000, help="mosaic: training mosaics")
    parser.add_argument("--val", type=int, default=3_000, help="mosaic: validation mosaics")
    parser.add_argument("--test", type=int, default=10_000, help="mosaic: test mosaics")
    args = parser.parse_args(argv)
    if args.imbalance < 1 or args.train < 1 or args.val < 0 or args.test < 1:
        parser.error("--imbalance must be >= 1, --train and --test >= 1, --val >= 0")
    source = args.source or idx.system_folder("fashion_mnist")
    work = None
    try:
        work = claim(args.out, args.force)
        started = time.perf_counter()
        if args.kind == "lt":
            report_lt(make_lt(source, work, args.seed, args.imbalance))
        else:
            report_mosaic(make_mosaic(source, work, args.seed, args.train, args.val, args.test))
        publish(work, args.out)
        elapsed = time.perf_counter() - started
    except UserError as error:
        print(f"fmnist_tables: {error}", file=sys.stderr)
        return 2
    finally:
        if work is not None and work.exists():
            shutil.rmtree(work)
    files = sum(1 for _ in args.out.rglob("*.png"))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        f"wrote {files} PNG files and {args.out / 'labels.csv'} "
        f"({size / 1e6:.1f} MB) in {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
