"""Claiming folders: the one place that decides a command may write into a folder.

A folder the user names for a run (``hydra.run.dir=``), a sweep, or an ``out=`` of eval,
predict or export must be new or empty: a folder holding anything else is refused with one
line before anything is written, so a user's files are never overwritten. A folder that
already holds a run is refused with a pointer to ``resume=``; a generated one gets a fresh
sibling (``_1``, ``_2``, ...). An empty name or the filesystem root is refused, and a folder
that cannot be created (under a regular file, in ``/proc``, a name too long, no permission) is
one :class:`UserError` naming it.

Every folder a claim creates is remembered (:func:`made_for`), so that the clean-up of a
command that fails before it starts removes only what this process made, never a folder
that existed before. No torch and no Hydra import: the CLI calls this before Hydra starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder, RunOverride, parse_overrides


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _exists(path: Path) -> bool:
    """``path.exists()``, False where the name cannot even be looked up (too long, a loop):
    creating it then fails with the reason, which the caller names."""
    try:
        return path.exists()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the name cannot be looked up (see :func:`_exists`)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _blocked_by_file(path: Path) -> Path | None:
    """The existing non-folder on the way to ``path`` (itself or a parent), if any."""
    for candidate in (path, *path.parents):
        if _exists(candidate):
            return None if _is_dir(candidate) else candidate
    return None


def check_place(path: str | Path, key: str) -> Path:
    """Refuse an empty folder name and the filesystem root for ``key`` (``output_root``,
    ``hydra.run.dir``, ``out``): an empty one would put the files into the working
    directory or, joined to a date, into ``/``."""
    text = str(path).strip()
    if not text:
        raise UserError(f"{key} is empty: name a folder, e.g. {key}=outputs")
    folder = Path(text)
    try:
        resolved = folder.resolve()
    except (OSError, RuntimeError):  # a symlink loop: creating it will say so
        return folder
    if resolved == Path(resolved.anchor):
        raise UserError(f"{_setting(key, text)} is the filesystem root: name a folder below it")
    return folder


# folders created by claims in this process: the claimed path -> the folders made for it
_made: dict[str, tuple[Path, ...]] = {}


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def made_for(path: str | Path) -> tuple[Path, ...] | None:
    """The folders this process created when it claimed ``path`` (outermost first; ``path``
    itself among them if it was new), or None when no claim of this process made it."""
    return _made.get(_key(Path(path)))


def take_made(path: str | Path) -> tuple[Path, ...]:
    """:func:`made_for`, forgotten: the command that now writes into ``path`` owns them."""
    return _made.pop(_key(Path(path)), ())


def make_dirs(path: str | Path, what: str = "folder") -> tuple[Path, ...]:
    """Create ``path`` and its missing parents, one level at a time; return the folders this
    call created (outermost first). A path that cannot be a folder is one line naming it."""
    folder = Path(path)
    blocker = _blocked_by_file(folder)
    if blocker is not None:
        detail = "it is a file" if blocker == folder else f"{blocker} is a file"
        raise UserError(f"cannot create the {what} {folder}: {detail}")
    missing = []
    for candidate in (folder, *folder.parents):
        if _is_dir(candidate):
            break
        missing.append(candidate)
    made: list[Path] = []
    for candidate in reversed(missing):
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours
        except OSError as error:
            remove_made(made)
            raise UserError(f"cannot create the {what} {folder}: {_reason(error)}") from error
        made.append(candidate)
    if made:
        _made[_key(folder)] = (*_made.get(_key(folder), ()), *made)
    return tuple(made)


def remove_made(made: Sequence[Path]) -> None:
    """Remove the folders of ``made`` (outermost first, as :func:`make_dirs` returns them)
    that are empty, deepest first: what a failed command created, and nothing else."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue  # already gone: its parent may still be empty
        except OSError:
            return  # not empty: its parents are not empty either


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """Create ``path`` and its parents (if missing); a path that cannot be a folder is one line."""
    make_dirs(path, what)
    return Path(path)


def holds_run(folder: str | Path) -> bool:
    """True when ``folder`` holds (part of) a run that imgcls wrote."""
    return RunFolder(Path(folder)).holds_run()


def _entries(folder: Path, key: str) -> list[str]:
    """The names in ``folder``; an unreadable folder is one line naming it."""
    try:
        return sorted(entry.name for entry in os.scandir(folder))
    except OSError as error:
        raise UserError(f"{_setting(key, folder)} cannot be read: {_reason(error)}") from error


def _setting(key: str, value: object) -> str:
    """``key=value`` as the user wrote it (``--out value`` for an option)."""
    return f"{key} {value}" if key.startswith("-") else f"{key}={value}"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def refuse_non_empty(folder: Path, key: str, advice: str) -> None:
    """A folder the user named must be new or empty: one holding anything is refused, so
    that no file of the user's is ever overwritten or removed."""
    if not _is_dir(folder):
        return
    names = _entries(folder, key)
    if names:
        raise UserError(
            f"{_setting(key, folder)} is not empty (it holds {_listed(names)}): {advice}"
        )


def claim_dir(base: str) -> str:
    """Create ``base`` (or ``base_1``, ``base_2``, ...) atomically and return it.

    ``os.mkdir`` fails when the folder exists, so two runs started in the same second never
    share a directory, whether they are threads, processes or separate commands.
    """
    parents = make_dirs(Path(base).parent)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else f"{base}_{attempt}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except OSError as error:
            remove_made(parents)
            raise UserError(f"cannot create the folder {candidate}: {_reason(error)}") from error
        _made[_key(Path(candidate))] = (*parents, Path(candidate))
        return candidate
    raise UserError(f"could not create a new run directory next to {base}")


def claim_run_folder(path: str | Path, key: str = "hydra.run.dir") -> tuple[Path, tuple[Path, ...]]:
    """Take the folder a user named (``hydra.run.dir=...``) for a new run.

    The folder must be new or empty: one holding a run is refused with a pointer to
    ``resume=`` (the only way to continue a run in its own folder), one holding anything
    else is refused too, so a run never overwrites, and its clean-up never removes, a file
    it did not make. Creating ``.hydra/`` (where Hydra writes the config next) is the claim.
    Returns ``(folder, made)``: the folders created for it (none for an empty folder that
    existed before, which a failed start leaves in place).
    """
    folder = check_place(path, key)
    taken = UserError(
        f"{key}={folder} already holds a run; continue it with resume={folder}, or choose a "
        "new folder"
    )
    if _is_dir(folder) and holds_run(folder):
        raise taken
    refuse_non_empty(folder, key, "a new run needs a new or empty folder; choose another")
    made = make_dirs(folder, "run directory")
    try:  # the claim itself: atomic, so two runs named into one empty folder cannot both start
        os.mkdir(RunFolder(folder).hydra_dir)
    except FileExistsError as error:
        remove_made(made)
        raise taken from error
    except OSError as error:
        remove_made(made)
        raise UserError(
            f"cannot write into the run directory {folder}: {_reason(error)}"
        ) from error
    return folder, made


def check_output_dir(
    path: str | Path, key: str, earlier: Callable[[Path], bool], what: str = "output folder"
) -> Path:
    """Check the folder a user named for a command's files (``out=`` of eval, predict and
    export, ``--out`` of report) before any work; the command creates it when it writes.

    It must be new or empty, or hold an earlier output of the same command (``earlier``
    recognises it by the record file imgcls wrote there), whose files are then replaced; a
    folder holding a run or anything else is refused, so no file of the user's is touched.
    """
    folder = check_place(path, key)
    blocker = _blocked_by_file(folder)
    if blocker is not None:
        detail = "it is a file" if blocker == folder else f"{blocker} is a file"
        raise UserError(f"cannot create the {what} {folder}: {detail}")
    if _is_dir(folder) and not earlier(folder):
        if holds_run(folder):
            raise UserError(f"{_setting(key, folder)} holds a run: choose a folder of its own")
        refuse_non_empty(folder, key, "choose a new or empty folder")
    return folder


def written_by_imgcls(path: Path, marker: bytes) -> bool:
    """True when the file at ``path`` is one imgcls wrote: ``marker`` (its header, a
    generator tag) is in its first 4 KB."""
    try:
        with path.open("rb") as handle:
            return marker in handle.read(4096)
    except OSError:
        return False


def refuse_foreign_file(path: Path, marker: bytes, advice: str) -> None:
    """An existing file is replaced only when imgcls wrote it (:func:`written_by_imgcls`):
    a file of the user's that has the name imgcls would write is never overwritten."""
    if _exists(path) and not written_by_imgcls(path, marker):
        raise UserError(
            f"{path} exists and imgcls did not write it: it is never overwritten; {advice}"
        )


@contextlib.contextmanager
def writing_into(folder: Path, what: str = "output folder") -> Iterator[list[Path]]:
    """Create ``folder`` (if missing, or claimed by :func:`claim_dir`) for a command's
    files; the command adds each file to the yielded list before it writes it.

    If writing fails, those files and the folders made for them are removed (nothing
    half-written stays), and an OSError (read-only place, full disk, name too long) becomes
    one line naming the folder.
    """
    make_dirs(folder, what)
    made = take_made(folder)  # what this call made, or the claim that made the folder
    written: list[Path] = []
    try:
        yield written
    except BaseException as error:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        remove_made(made)
        if isinstance(error, OSError):
            raise UserError(f"cannot write into the {what} {folder}: {_reason(error)}") from error
        raise


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
