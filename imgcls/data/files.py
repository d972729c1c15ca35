"""Image files as a lazy split: decoded, converted and resized only when read.

A :class:`FileSet` is what a folder dataset holds before it is either decoded into memory
(:meth:`FileSet.materialize`, the fast path) or read one image at a time by DataLoader
workers. Every image is converted to the dataset's mode (L or RGB) and fitted to a square
``size``: scaled so the shorter side fits, then centre-cropped, keeping the aspect ratio.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from imgcls.base.images import open_image
from imgcls.data.splits import ImageSet

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path: str, channels: int, size: int) -> np.ndarray:
    """uint8 (C, size, size) array; an unreadable file is a one-line error naming it."""
    from PIL import Image, ImageOps

    image = open_image(path, "L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
    array = np.array(image, dtype=np.uint8)  # a writable copy
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


@dataclass
class FileSet:
    """Image file paths with their labels (class indices (N,), or (N, classes) multi-hot
    rows); images are read on demand."""

    paths: list[str]
    labels: torch.Tensor
    channels: int
    size: int

    in_memory = False

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def nbytes(self) -> int:
        return len(self.paths) * self.channels * self.size * self.size

    def read(self, index: int) -> torch.Tensor:
        return torch.from_numpy(read_image(self.paths[index], self.channels, self.size))

    def subset(self, indices: np.ndarray) -> FileSet:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return FileSet(
            [self.paths[i] for i in index.tolist()], self.labels[index], self.channels, self.size
        )

    def materialize(self, threads: int = 8) -> ImageSet:
        """Decode every image (threads: PIL releases the GIL while decoding)."""
        images = np.empty((len(self), self.channels, self.size, self.size), dtype=np.uint8)

        def load(i: int) -> None:
            images[i] = read_image(self.paths[i], self.channels, self.size)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(load, range(len(self))))
        return ImageSet(torch.from_numpy(images), self.labels.clone())

    def to(self, device: torch.device | str) -> FileSet:
        return self  # files stay on disk; batches move to the device
