"""The decode cache: image files decoded once into a memory-mapped uint8 array on disk.

A folder or table dataset decodes every image file in every run; a sweep, a k-fold, a resume
or the next run pays it again. An entry here holds the decoded images of one file list as a
``.npy`` file (N, C, H, W) in a cache folder outside the run folders, found by a key over
everything that decides the pixels: each file's path, size, modification time (ns) and inode, and
the decoding options (channels, image size, the decoder's version). When any of them changes
the key changes, so the entry is rebuilt rather than trusted; old entries are left for the
user to delete (the folder is named in the guide).

An entry is written to a temporary file in the cache folder and renamed into place
(:func:`imgcls.base.atomic.atomic_write`): two runs building it at once both finish, the
later rename wins, and a reader never sees half of one. A 12-byte trailer after the array
(a magic word and the CRC-32 of the pixels) lets a reader refuse a truncated or damaged
entry, which is then rebuilt. The cache is an optimisation, never a requirement: a folder
that cannot be written, or a disk without room for the entry, is one warning line per run
and the images are decoded as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from imgcls.base.atomic import atomic_write
from imgcls.base.errors import UserError

logger = logging.getLogger("imgcls")

FORMAT = 1  # the layout of an entry; part of the key
MAGIC = b"IMGCLSc1"
TRAILER = struct.Struct("<8sI")  # magic, CRC-32 of the array's bytes
HEADROOM = 256 * 2**20  # bytes an entry must leave free on the cache folder's disk


def default_folder() -> Path:
    """``$IMGCLS_CACHE_DIR``, else ``$XDG_CACHE_HOME/imgcls``, else ``~/.cache/imgcls``."""
    if os.environ.get("IMGCLS_CACHE_DIR"):
        return Path(os.environ["IMGCLS_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "imgcls"
    return Path.home() / ".cache" / "imgcls"


class CacheSettings:
    """``data.cache`` and ``data.cache_dir`` of one run, and whether it has warned yet (one
    warning line per run, however many file lists it caches)."""

    def __init__(self, enabled: bool = True, folder: str | os.PathLike | None = None) -> None:
        self.enabled = enabled
        self.folder = Path(folder).expanduser() if folder else default_folder()
        self.warned = False

    @property
    def entries(self) -> Path:
        return self.folder / "decoded"

    def warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            logger.warning(f"decode cache: {message}; images are decoded in this run")


_current: ContextVar[CacheSettings | None] = ContextVar("imgcls_decode_cache", default=None)


@contextlib.contextmanager
def using(settings: CacheSettings) -> Iterator[CacheSettings]:
    """Datasets built inside this block cache with ``settings`` (a file list takes the
    settings current when it is made, and keeps them in its subsets and workers)."""
    token = _current.set(settings)
    try:
        yield settings
    finally:
        _current.reset(token)


def current() -> CacheSettings:
    """The settings in force: those of :func:`using`, else the defaults (on, default folder)."""
    return _current.get() or CacheSettings()


def settings_from(options: Any) -> CacheSettings:
    """Settings from the ``data`` config node (``cache``, ``cache_dir``; both optional)."""
    get = options.get if hasattr(options, "get") else lambda key, default: default
    return CacheSettings(bool(get("cache", True)), get("cache_dir", None))


def entry_key(paths: Sequence[str], options: dict[str, Any]) -> str | None:
    """The key of ``paths`` decoded with ``options``; None when a file cannot be stat'ed
    (decoding will name it). The inode number joins size and modification time, so a file
    replaced by another (renamed over it) within the clock's tick is seen too."""
    digest = hashlib.sha256(json.dumps({"format": FORMAT, **options}, sort_keys=True).encode())
    if not all(os.path.isabs(path) for path in paths):
        digest.update(f"cwd\0{os.getcwd()}\0".encode())  # relative paths mean other files
    rows = []
    try:
        for path in paths:
            stat = os.stat(path)
            rows.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}\n")
    except OSError:
        return None
    digest.update("".join(rows).encode())
    return digest.hexdigest()


class DecodeCache:
    """The cache entry of one file list: looked up once per process, written at most once."""

    def __init__(
        self, paths: Sequence[str], shape: tuple[int, ...], options: dict[str, Any]
    ) -> None:
        self.paths = paths
        self.shape = (len(paths), *shape)
        self.options = options
        self.settings = current()
        self._key: str | None = None
        self._looked = False
        self._verified = False
        self._array: np.ndarray | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def path(self) -> Path | None:
        """The entry's file (whether or not it exists); None when the files cannot be keyed."""
        if self._key is None:
            self._key = entry_key(self.paths, self.options)
        return None if self._key is None else self.settings.entries / f"{self._key}.npy"

    def lookup(self, verify: bool = False) -> np.ndarray | None:
        """The entry, memory-mapped read-only, or None when there is no whole one.

        ``verify`` checks the CRC-32 of every pixel (a read of the whole entry, which the
        in-memory path does anyway); without it the header, shape and size are checked.
        """
        if not self.enabled:
            return None
        if not self._looked:
            self._looked = True
            path = self.path()
            self._array = None if path is None else _open(path, self.shape)
        if self._array is not None and verify and not self._verified:
            if not _crc_matches(self._array):
                logger.info(f"decode cache: {self.path()} is damaged; it is rebuilt")
                self._array = None
            self._verified = True
        return self._array

    def store(self, images: np.ndarray) -> np.ndarray:
        """Write ``images`` as the entry and return it memory-mapped; when it cannot be
        written (one warning line says why), ``images`` itself, kept for the other splits."""
        path = self.path()
        if not self.enabled or path is None:
            return images
        images = np.ascontiguousarray(images)
        written = self._write(path, images)
        self._looked, self._verified = True, True
        self._array = _open(path, self.shape) if written else None
        if self._array is None:
            self._array = images
        return self._array

    def _write(self, path: Path, images: np.ndarray) -> bool:
        """The entry written atomically, if the folder is writable and its disk has room."""
        trailer = TRAILER.pack(MAGIC, _crc(images))

        def write(f: Any) -> None:
            np.save(f, images, allow_pickle=False)
            f.write(trailer)

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(path.parent).free
            if images.nbytes + HEADROOM > free:
                self.settings.warn(
                    f"{images.nbytes / 2**20:.0f} MB of decoded images would leave less than "
                    f"{HEADROOM // 2**20} MB free in {path.parent}; not cached (data.cache_dir "
                    "chooses another folder)"
                )
                return False
            atomic_write(path, write, binary=True)
        except (OSError, UserError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.settings.warn(
                f"cannot write {path.parent} ({reason}); set data.cache_dir to a writable "
                "folder, or data.cache=false"
            )
            return False
        return True

    def __getstate__(self) -> dict[str, Any]:
        """DataLoader workers get the key found here, not the memory map (each maps its own)."""
        if self.enabled:
            self.path()
        return {**self.__dict__, "_array": None, "_looked": False}


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The entry at ``path`` memory-mapped, if it is whole: a .npy of ``shape`` uint8 and
    the trailer, nothing more or less."""
    if not path.is_file():  # no entry yet (or a cache folder that is none: store() says so)
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(array, np.memmap) or array.dtype != np.uint8 or array.shape != shape:
            return None
        size = path.stat().st_size
        if size != array.offset + array.nbytes + TRAILER.size:
            return None
        with open(path, "rb") as f:
            f.seek(size - TRAILER.size)
            magic, _ = TRAILER.unpack(f.read(TRAILER.size))
        return array if magic == MAGIC else None
    except (OSError, ValueError, EOFError) as error:  # damaged: rebuilt, never trusted
        logger.info(f"decode cache: {path} is unreadable ({error}); it is rebuilt")
        return None


def _crc_matches(array: np.memmap) -> bool:
    """Whether the pixels still have the CRC-32 written in the trailer."""
    path = Path(array.filename)
    try:
        with open(path, "rb") as f:
            f.seek(array.offset + array.nbytes)
            _, expected = TRAILER.unpack(f.read(TRAILER.size))
    except (OSError, struct.error):
        return False
    return _crc(array) == expected


def _crc(array: np.ndarray) -> int:
    """CRC-32 of a C-contiguous array's bytes, in 64 MiB pieces (a memory map stays mapped)."""
    crc, step = 0, 64 * 2**20
    flat = array.reshape(-1)
    for start in range(0, flat.size, step):
        crc = zlib.crc32(flat[start : start + step], crc)
    return crc
