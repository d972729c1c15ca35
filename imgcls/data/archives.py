"""Shared helpers of the on-disk dataset readers: locating files and the download hook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from imgcls.base.errors import UserError


def find_folder(root: str, candidates: Sequence[str], names: Sequence[str]) -> Path | None:
    """The first of ``root/<candidate>`` that holds every file in ``names`` (each may be .gz)."""
    base = Path(root).expanduser()
    for sub in candidates:
        folder = base / sub if sub else base
        if all(locate(folder, name) is not None for name in names):
            return folder
    return None


def locate(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_files(
    dataset: str,
    root: str,
    candidates: Sequence[str],
    names: Sequence[str],
    *,
    also: Sequence[Path] = (),
    install: str | None = None,
) -> UserError:
    """One line that says which files were expected where, and how to get them.

    ``also``: further folders that were searched (a system folder such as
    ``/usr/share/datasets/fashion-mnist``); ``install``: the command that installs the files.
    """
    base = Path(root).expanduser().resolve()
    where = " or ".join(str(base / c) if c else str(base) for c in candidates)
    if also:
        where += ", or in " + " or ".join(str(folder) for folder in also)
    how = "set dataset.root to their folder, or dataset.download=true to fetch them"
    if install:
        how = f"install them with `{install}`, {how}"
    return UserError(f"{dataset} files not found: expected {', '.join(names)} in {where} ({how})")


def download(dataset: str, fetch: Callable[[], object]) -> None:
    """Run a torchvision download helper; a network failure is one line, not a traceback."""
    try:
        fetch()
    except (OSError, RuntimeError, ValueError) as error:
        raise UserError(f"downloading {dataset} failed: {' '.join(str(error).split())}") from error
