"""Atomic file writes: a crash leaves either the old file or the new one, never half of one.

Its own module so that the run record (:mod:`imgcls.base.record`) and the run's writers
(:mod:`imgcls.base.runs`) share one writer without importing each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from imgcls.base.errors import UserError, error_chain


class FolderVanishedError(UserError):
    """The folder a file was being written into was deleted or renamed meanwhile."""


def atomic_write(
    path: Path, write: Callable[[Any], None], binary: bool = False, make_parents: bool = True
) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``.

    A crash (even kill -9) leaves either the old file or the new one, never half of one.
    The temporary file is made, renamed and (on any failure) removed relative to the
    folder's open descriptor, so a folder renamed meanwhile keeps no stray ``.tmp``. A
    failure of the disk (full, read-only) is an OSError naming ``path``. With
    ``make_parents=False`` (a run's own files) a missing folder is not made again: it is a
    :class:`FolderVanishedError` naming it.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError as error:
        raise vanished(path) from error
    try:
        _write_in(folder, path, write, binary)
    finally:
        os.close(folder)


def _write_in(folder: int, path: Path, write: Callable[[Any], None], binary: bool) -> None:
    """The temporary file, written, synced and renamed over ``path`` inside ``folder``."""
    fd, tmp = _temporary(folder, path)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)
        named = _named(error, path)
        if named is not None:
            raise named from error
        raise


def _temporary(folder: int, path: Path) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` in ``folder``, with the usual permissions (umask)."""
    for _ in range(100):
        name = f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            return os.open(name, flags, 0o666, dir_fd=folder), name
        except FileExistsError:
            continue
        except FileNotFoundError as error:  # the folder was deleted: nothing can be made in it
            raise vanished(path) from error
    raise FileExistsError(f"no free temporary name beside {path}")


def _named(error: BaseException, path: Path) -> BaseException | None:
    """The OSError behind ``error`` with ``path`` as its file, when it names none (a write
    through a handle, or torch's RuntimeError around it); a deleted folder says so."""
    if isinstance(error, UserError):
        return None
    for cause in error_chain(error):
        if isinstance(cause, FileNotFoundError) and not path.parent.is_dir():
            return vanished(path)
        if isinstance(cause, OSError) and cause.errno is not None and cause.filename is None:
            return OSError(cause.errno, cause.strerror or str(cause), str(path))
    return None


def vanished(path: Path) -> FolderVanishedError:
    """The error for writing ``path`` into a folder that is gone, naming the highest missing
    folder (the run folder, when it was deleted or renamed during the run)."""
    missing = path.parent
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    return FolderVanishedError(
        f"the folder {missing} disappeared while {path.name} was being written "
        "(deleted or renamed during the run)"
    )


def write_json(path: Path, data: Mapping[str, Any], make_parents: bool = True) -> None:
    """``data`` as indented JSON, atomically (values JSON cannot hold are written as text)."""
    atomic_write(
        path, lambda f: json.dump(data, f, indent=2, default=str), make_parents=make_parents
    )
