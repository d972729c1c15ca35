"""Image files as a lazy split: decoded, converted and resized only when read.

A :class:`FileSet` is what a folder dataset holds before it is either decoded into memory
(:meth:`FileSet.materialize`, the fast path) or read one image at a time by DataLoader
workers. Every image is converted to the dataset's mode (L or RGB) and fitted to a square
``size``: scaled so the shorter side fits, then centre-cropped, keeping the aspect ratio.

The decoded images of the whole file list a set was made from are kept in the decode cache
(:mod:`imgcls.data.cache`); its splits and samples are rows of that one entry, so a new split
seed, a k-fold or a sweep reads the same entry.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from imgcls.base.images import open_image
from imgcls.data.cache import DecodeCache
from imgcls.data.splits import ImageSet

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# What :func:`read_image` does to a file; part of the decode cache's key with Pillow's
# version, so a change to the decoding rebuilds every entry. Bump it when read_image changes.
DECODER = "fit-bilinear/1"


def decoder_version() -> str:
    """:data:`DECODER` and the Pillow that decodes (imported here: Pillow loads on demand)."""
    from PIL import __version__

    return f"{DECODER} pillow {__version__}"


def read_image(path: str, channels: int, size: int) -> np.ndarray:
    """uint8 (C, size, size) array; an unreadable file is a one-line error naming it."""
    from PIL import Image, ImageOps

    image = open_image(path, "L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
    array = np.array(image, dtype=np.uint8)  # a writable copy
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def decode_all(paths: list[str], channels: int, size: int, threads: int = 8) -> np.ndarray:
    """Every file decoded into one uint8 (N, C, size, size) array (threads: PIL releases the
    GIL while decoding)."""
    images = np.empty((len(paths), channels, size, size), dtype=np.uint8)

    def load(i: int) -> None:
        images[i] = read_image(paths[i], channels, size)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(load, range(len(paths))))
    return images


@dataclass
class FileSet:
    """Image file paths with their labels (class indices (N,), or (N, classes) multi-hot
    rows); images are read on demand.

    ``cache`` is the decode cache of the file list the set was first made from (``rows``:
    this set's rows of it); subsets share it.
    """

    paths: list[str]
    labels: torch.Tensor
    channels: int
    size: int
    cache: DecodeCache | None = field(default=None, repr=False, compare=False)
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)

    in_memory = False

    def __post_init__(self) -> None:
        if self.cache is None:
            options = {"channels": self.channels, "size": self.size, "decoder": decoder_version()}
            shape = (self.channels, self.size, self.size)
            self.cache = DecodeCache(self.paths, shape, options)
            self.rows = np.arange(len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def nbytes(self) -> int:
        return len(self.paths) * self.channels * self.size * self.size

    def read(self, index: int) -> torch.Tensor:
        """One image: from the decode cache's entry when there is one, else from its file.

        This path (DataLoader workers) reads an entry but never builds one: it is chosen for
        data larger than ``data.memory_mb``, where building would decode every image before
        the first step (the wait this path avoids) and write a file as large as the decoded
        data. A run on the in-memory path builds the entry; later runs on either path read it.
        """
        cached = self.cache.lookup() if self.cache is not None else None
        if cached is not None:
            return torch.from_numpy(np.array(cached[self.rows[index]]))
        return torch.from_numpy(read_image(self.paths[index], self.channels, self.size))

    def subset(self, indices: np.ndarray) -> FileSet:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        rows = self.rows[index.numpy()] if self.rows is not None else None
        return FileSet(
            [self.paths[i] for i in index.tolist()],
            self.labels[index],
            self.channels,
            self.size,
            self.cache,
            rows,
        )

    def join(self, other: FileSet) -> FileSet:
        """This set's files, then ``other``'s (k-fold joins train and validation): rows of
        the same decode-cache entry when both come from one file list, else a new list."""
        labels = torch.cat([self.labels, other.labels])
        paths = [*self.paths, *other.paths]
        if self.cache is other.cache and self.rows is not None and other.rows is not None:
            rows = np.concatenate([self.rows, other.rows])
            return FileSet(paths, labels, self.channels, self.size, self.cache, rows)
        return FileSet(paths, labels, self.channels, self.size)

    def materialize(self, build_cache: bool = False, threads: int = 8) -> ImageSet:
        """Every image in memory: rows of the decode cache's entry, built first (all files of
        the list this set comes from) when missing and ``build_cache``; else decoded here."""
        source = self._decoded(threads, build_cache)
        if source is not None:
            images = np.ascontiguousarray(source[self.rows])
        else:
            images = decode_all(self.paths, self.channels, self.size, threads)
        return ImageSet(torch.from_numpy(images), self.labels.clone())

    def _decoded(self, threads: int, build: bool) -> np.ndarray | None:
        """The whole source list decoded: the cache's entry, or built now when ``build``."""
        cache = self.cache
        if cache is None or not cache.enabled:
            return None
        found = cache.lookup(verify=True)
        if found is not None or not build:
            return found
        return cache.store(decode_all(list(cache.paths), self.channels, self.size, threads))

    def to(self, device: torch.device | str) -> FileSet:
        return self  # files stay on disk; batches move to the device
