"""The procedural pattern dataset: one pattern per class, any image size, shape and class count.

Class k draws a pattern with a random phase into channel ``k % channels`` on top of Gaussian
noise: 0 horizontal lines, 1 vertical lines, 2 diagonal stripes, 3 concentric circles,
4 noise only; classes from 5 on reuse the four structured patterns at higher frequencies.
Each image is min-max scaled to 0..255, as in the seed. Deterministic for a ``seed``.
"""

from __future__ import annotations

import numpy as np

from imgcls.base.memory import check_fits
from imgcls.config.options.datasets import SyntheticOptions
from imgcls.data.splits import DataSplits, from_arrays
from imgcls.registry import DATASETS

BASE_PATTERNS = ("horizontal_lines", "vertical_lines", "diagonal", "circular")
CHUNK = 2048  # images generated at a time, to bound float memory for large requests


def class_names(num_classes: int) -> list[str]:
    names = [*BASE_PATTERNS, "noise"][:num_classes]
    for k in range(5, num_classes):
        names.append(f"{BASE_PATTERNS[(k - 5) % 4]}_x{2 + (k - 5) // 4}")
    return names


def _pattern(kind: int, frequency: float, size: int, phase: np.ndarray) -> np.ndarray:
    """(n, size, size) sinusoidal patterns of one kind with per-image phases."""
    coords = np.arange(size, dtype=np.float32) / size
    y, x = np.meshgrid(coords, coords, indexing="ij")
    if kind == 0:
        field = y
    elif kind == 1:
        field = x
    elif kind == 2:
        field = (x + y) / np.sqrt(2.0)
    else:
        field = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return np.sin(2 * np.pi * frequency * field[None] + phase[:, None, None]).astype(np.float32)


def generate(
    num_samples: int, num_classes: int, image_size: int, channels: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and labels (N,), balanced over classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num_samples) % num_classes
    rng.shuffle(labels)
    images = np.empty((num_samples, channels, image_size, image_size), dtype=np.uint8)
    for start in range(0, num_samples, CHUNK):
        chunk = labels[start : start + CHUNK]
        x = rng.standard_normal((len(chunk), channels, image_size, image_size), dtype=np.float32)
        x *= noise
        for k in np.unique(chunk):
            rows = np.flatnonzero(chunk == k)
            if k == 4:  # the "noise" class: stronger unstructured noise, no pattern
                x[rows] += rng.standard_normal(x[rows].shape, dtype=np.float32) * 0.5
                continue
            kind = k % 4 if k < 4 else (k - 5) % 4
            frequency = 2.0 * (1 if k < 4 else 2 + (k - 5) // 4)
            phase = rng.uniform(0, 2 * np.pi, size=len(rows)).astype(np.float32)
            x[rows, k % channels] += _pattern(kind, frequency, image_size, phase)
        low = x.min(axis=(1, 2, 3), keepdims=True)
        high = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - low) / np.maximum(high - low, 1e-6)
        images[start : start + len(chunk)] = np.rint(x * 255.0).astype(np.uint8)
    return images, labels.astype(np.int64)


@DATASETS.register("synthetic", SyntheticOptions)
def synthetic(options: SyntheticOptions) -> DataSplits:
    """The generated patterns, split three ways (refused first when they cannot fit)."""
    o = options
    pixels = o.channels * o.image_size**2
    # the uint8 images, and the float32 chunk they are drawn in (with a temporary as large)
    needed = o.num_samples * (pixels + 8) + min(o.num_samples, CHUNK) * pixels * 4 * 2
    check_fits(
        needed,
        f"{o.num_samples} synthetic images of {o.channels}x{o.image_size}x{o.image_size}",
        "dataset.num_samples or dataset.image_size",
    )
    images, labels = generate(
        o.num_samples, o.num_classes, o.image_size, o.channels, o.noise, o.seed
    )
    return from_arrays("synthetic", images, labels, class_names(o.num_classes), options)
