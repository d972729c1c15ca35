"""Claiming folders for new runs: the one place that decides a run may write into a folder.

A folder that already holds a run (its summary, metrics, checkpoints, log or ``.hydra/``) is
never given to another run: a named one is refused with a pointer to ``resume=``, a
generated one gets a fresh sibling (``_1``, ``_2``, ...). A folder that cannot be created
(under a regular file, in ``/proc``, without permission) is one :class:`UserError` naming
it. No torch and no Hydra import: the CLI calls this before Hydra starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder, RunOverride, parse_overrides


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _blocked_by_file(path: Path) -> Path | None:
    """The existing non-folder on the way to ``path`` (itself or a parent), if any."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """Create ``path`` and its parents (if missing); a path that cannot be a folder is one line."""
    folder = Path(path)
    blocker = _blocked_by_file(folder)
    if blocker is not None:
        detail = "it is a file" if blocker == folder else f"{blocker} is a file"
        raise UserError(f"cannot create the {what} {folder}: {detail}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the {what} {folder}: {_reason(error)}") from error
    return folder


def holds_run(folder: str | Path) -> bool:
    """True when ``folder`` holds (part of) a run that imgcls wrote."""
    return RunFolder(Path(folder)).holds_run()


def claim_dir(base: str) -> str:
    """Create ``base`` (or ``base_1``, ``base_2``, ...) atomically and return it.

    ``os.mkdir`` fails when the folder exists, so two runs started in the same second never
    share a directory, whether they are threads, processes or separate commands.
    """
    ensure_dir(Path(base).parent)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else f"{base}_{attempt}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except OSError as error:
            raise UserError(f"cannot create the folder {candidate}: {_reason(error)}") from error
        return candidate
    raise UserError(f"could not create a new run directory next to {base}")


def claim_run_folder(path: str | Path, key: str = "hydra.run.dir") -> tuple[Path, bool]:
    """Take the folder a user named (``hydra.run.dir=...``) for a new run.

    Returns ``(folder, created)``: ``created`` is False for an empty folder that existed
    before, which a failed start must leave in place. A folder holding a run is refused:
    only ``resume=<folder>`` continues a run in its own folder. Creating ``.hydra/`` (where
    Hydra writes the config next) is the claim.
    """
    folder = Path(path)
    taken = UserError(
        f"{key}={folder} already holds a run; continue it with resume={folder}, or choose a "
        "new folder"
    )
    created = not folder.is_dir()
    if not created and holds_run(folder):
        raise taken
    ensure_dir(folder, "run directory")
    try:  # the claim itself: atomic, so two runs named into one empty folder cannot both start
        os.mkdir(RunFolder(folder).hydra_dir)
    except FileExistsError as error:
        raise taken from error
    except OSError as error:
        raise UserError(
            f"cannot write into the run directory {folder}: {_reason(error)}"
        ) from error
    return folder, created


_unique_dirs: dict[str, str] = {}


def unique_dir(base: str) -> str:
    """Hydra's ``imgcls_unique_dir`` resolver: :func:`claim_dir`, memoised per invocation.

    Hydra may resolve the same run-directory expression more than once for one job; the
    memo makes every resolution in this CLI invocation name the folder claimed first.
    """
    if base not in _unique_dirs:
        _unique_dirs[base] = claim_dir(base)
    return _unique_dirs[base]


def reset_unique_dirs() -> None:
    """Forget memoised run directories (one CLI invocation = one set of run directories)."""
    _unique_dirs.clear()


def job_dir(name: str, sweep_dir: str, overrides: list[str]) -> str:
    """Hydra's ``imgcls_job_dir`` resolver: the sub-folder of one sweep job.

    A job re-run into its own folder (``sweep.resume``, a requeued SLURM job) has the same
    overrides as the job that made it and keeps that folder; a job whose number collides with
    another job's folder (``sweep.resume`` with other sweep values) gets a fresh sibling, so
    that it never overwrites that job's run.
    """
    wanted = _job_overrides(parse_overrides(overrides))
    candidate, attempt = name, 0
    while True:
        folder = RunFolder(Path(sweep_dir) / candidate)
        if not folder.holds_run() or _saved_overrides(folder) == wanted:
            return candidate
        attempt += 1
        candidate = f"{name}_{attempt}"


def _job_overrides(overrides: list[RunOverride]) -> list[str]:
    """A job's overrides without ``sweep.resume`` (which a re-run adds, and which changes
    nothing the job computes)."""
    return [o.text for o in overrides if o.key != "sweep.resume"]


def _saved_overrides(folder: RunFolder) -> list[str] | None:
    """The overrides recorded in a job folder, or None when its file is missing or damaged."""
    if not folder.overrides_file.is_file():
        return None
    try:
        return _job_overrides(folder.read_overrides())
    except UserError:
        return None
