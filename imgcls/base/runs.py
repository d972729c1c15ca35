"""The run directory's writers: folder creation, the metrics CSV, summary.json and train.log.

Which files a run folder holds, and their names, is :mod:`imgcls.base.record`'s business;
this module writes them while a run trains, and removes what a run that never started left.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from imgcls.base.atomic import atomic_write, vanished, write_json
from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir, made_for, remove_made
from imgcls.base.record import RunFolder, Summary, write_overrides

__all__ = [
    "MetricsWriter",
    "RunDirectory",
    "atomic_write",
    "check_metrics",
    "new_run_dir",
    "refuse_completed",
    "remove_unstarted",
    "truncate_metrics",
    "write_json",
]

LOG_FORMAT = "%(message)s"
logger = logging.getLogger("imgcls")


def new_run_dir(root: str | Path, model: str, dataset: str) -> Path:
    """A fresh ``<root>/<date>/<time>_<model>_<dataset>`` folder, never shared with another run."""
    now = datetime.now()
    base = Path(root) / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}_{model}_{dataset}"
    return Path(claim_dir(str(base)))


def remove_unstarted(run_dir: Path, made: Sequence[Path] | None = None) -> None:
    """Delete what a run that failed before training wrote (no summary.json, no checkpoint).

    Only the files a run makes are removed (a run folder was new or empty when claimed), and
    of the folders only those this process created for the run: ``made`` (outermost first),
    by default what the claim of ``run_dir`` recorded (:func:`made_for`). A folder no claim
    of this process made (a sweep job's, which Hydra made) is removed when empty, never its
    parent; a folder that existed before the claim is never removed.
    """
    folder = RunFolder(run_dir)
    if not run_dir.is_dir() or folder.summary_json.exists() or folder.has_checkpoints():
        return
    for target in folder.startup_paths:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)
    if made is None:
        made = made_for(run_dir)
    remove_made((run_dir,) if made is None else made)


class MetricsWriter:
    """Appends one row per epoch to metrics.csv, each with a single write of a whole line.

    A crash or a full disk can therefore cut at most the row being written, and a failed
    write is undone (the file is cut back to its previous length): nothing half-written.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(columns)
        if not path.exists() or path.stat().st_size == 0:
            self._append(_csv_line(self.columns))

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one epoch's row, so a crash keeps every finished epoch."""
        self._append(_csv_line([_format(row.get(c, "")) for c in self.columns]))

    def _append(self, line: str) -> None:
        """``line`` at the end of the file, on a line of its own, or not at all."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except FileNotFoundError as error:  # the run folder was deleted or renamed
            raise vanished(self.path) from error
        try:
            size = os.fstat(fd).st_size
            if size and _last_byte(self.path, size) != b"\n":
                line = "\n" + line  # a row cut by a crash stays alone (readers drop it)
            _write_all(fd, line.encode("utf-8"), size, self.path)
        finally:
            os.close(fd)


def _csv_line(values: Sequence[Any]) -> str:
    """One CSV row as the csv module writes it (ending in ``\\r\\n``, as metrics.csv always has)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def _write_all(fd: int, data: bytes, size: int, path: Path) -> None:
    """Write ``data`` to ``fd``; on a failure (a full disk) cut the file back to ``size``."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as error:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise OSError(error.errno, error.strerror, str(path)) from error


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class RunDirectory:
    """The writers of one run while it trains; its paths are :attr:`folder`'s (a
    :class:`RunFolder`). Creating it does not write anything yet."""

    def __init__(self, path: str | Path | RunFolder, writable: bool = True) -> None:
        self.folder = RunFolder.of(path)
        self.path = self.folder.path
        # False on DDP ranks other than 0: they read the run directory but never write to it.
        self.writable = writable
        self._log_handler: logging.Handler | None = None

    @property
    def checkpoints(self) -> Path:
        """The run's ``checkpoints/`` folder (from the run record)."""
        return self.folder.checkpoints

    @property
    def plots(self) -> Path:
        """The run's ``plots/`` folder (from the run record)."""
        return self.folder.plots

    @property
    def summary_path(self) -> Path:
        """The run's ``summary.json`` (from the run record)."""
        return self.folder.summary_json

    @property
    def metrics_path(self) -> Path:
        """The run's ``metrics.csv`` (from the run record)."""
        return self.folder.metrics_csv

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (the engine writes last, best and epoch_NNN)."""
        return self.folder.checkpoint(name)

    def prepare(self) -> None:
        """Create the folder and its checkpoints/ (on the rank that writes)."""
        if not self.writable:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)

    def write_config(self, config: Mapping[str, Any], overrides: Sequence[str]) -> None:
        """Write ``.hydra/config.yaml`` and ``overrides.yaml`` unless Hydra already did (an
        empty config.yaml, which a full disk leaves, is written again)."""
        if not self.writable:
            return
        config_file = self.folder.config_file
        if not config_file.exists() or config_file.stat().st_size == 0:
            atomic_write(
                self.folder.config_file,
                lambda f: yaml.safe_dump(dict(config), f, sort_keys=False),
            )
        if not self.folder.overrides_file.exists():
            write_overrides(self.folder.overrides_file, overrides)

    def write_summary(self, summary: Summary) -> None:
        """Write summary.json atomically (on the rank that writes), never making the run
        folder again: a folder deleted or renamed during the run is a one-line error, and
        how a run ended is not recorded where its folder no longer is."""
        if not self.writable:
            return
        if summary.status in ("failed", "interrupted") and not self.path.is_dir():
            return
        write_json(self.folder.summary_json, summary.to_dict(), make_parents=False)

    def read_summary(self) -> Summary:
        """The summary.json already in the folder (a one-line UserError when unreadable)."""
        return self.folder.read_summary()

    def attach_log(self) -> None:
        """Copy the ``imgcls`` logger's messages into train.log for the duration of the run."""
        if not self.writable:
            return
        handler = RunLogHandler(self.folder.train_log)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        self._log_handler = handler

    def detach_log(self) -> None:
        """Stop copying log lines into ``train.log`` and close it."""
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


class RunLogHandler(logging.FileHandler):
    """train.log's handler: a line that cannot be written (a full disk, a folder gone)
    stops the copying, quietly. The console keeps every line; the run's next write of its
    own files reports the disk in one line, where logging would print a traceback per line.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.failure: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line unless an earlier line already failed."""
        if self.failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Remember the first failure instead of printing a traceback on stderr."""
        self.failure = sys.exc_info()[1]


def refuse_completed(run_dir: Path) -> None:
    """A folder whose summary.json says completed is never trained into again."""
    try:
        status = RunFolder(run_dir).read_summary().status
    except UserError:
        return  # no summary (or a broken one): nothing finished here
    if status == "completed":
        raise UserError(
            f"{run_dir} holds a completed run: it is never overwritten; choose a new folder"
        )


def check_metrics(path: Path) -> None:
    """A metrics.csv that a run can go on appending to: its header row must be readable
    (a one-line UserError naming the file if not); damaged rows are :func:`truncate_metrics`'s."""
    if path.exists():
        _read_metrics(path)


def truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep the rows of the epochs the checkpoint holds, and only whole ones.

    Rows after the checkpoint's epoch (written just before a kill -9) go silently; a row cut
    without its newline (a crash, a full disk) or one that is not a row of numbers is
    dropped with one log line naming the file and the lines, so that the next row starts
    on a line of its own.
    """
    if not path.exists():
        return
    header, rows, damaged = _read_metrics(path)
    if header is None:
        return
    if damaged:
        listed = "; ".join(f"line {number}: {why}" for number, why in damaged)
        logger.warning(f"{path}: dropped {len(damaged)} damaged row(s) ({listed})")
    column = header.index("epoch")
    kept = [row for row in rows if int(float(row[column])) <= epochs_done]
    if len(kept) == len(rows) and not damaged:
        return
    text = "".join(_csv_line(row) for row in [header, *kept])
    atomic_write(path, lambda handle: handle.write(text), make_parents=False)


MetricsRows = tuple[list[str] | None, list[list[str]], list[tuple[int, str]]]


def _read_metrics(path: Path) -> MetricsRows:
    """The header, the whole rows and the damaged rows (line number, why) of metrics.csv.

    An empty file has no header and no rows; a header that is not a list of column names
    with ``epoch`` among them is a one-line UserError naming the file.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path} is unreadable ({error.strerror or error})") from error
    if not data:
        return None, [], []
    raw = data.split(b"\n")
    cut = len(raw) if raw[-1] else 0  # the number of the last line when it has no newline
    numbered = [(i + 1, line) for i, line in enumerate(raw) if line.strip()]
    header = _parse_line(numbered[0][1]) if numbered else None
    if not header or "epoch" not in header or not all(_is_name(h) for h in header):
        raise UserError(
            f"{path} is damaged: its first line is not the header of an imgcls metrics "
            "file; move it away to continue the run without the earlier rows"
        )
    rows: list[list[str]] = []
    damaged: list[tuple[int, str]] = []
    for number, line in numbered[1:]:
        row = _parse_line(line)
        if number == cut:
            damaged.append((number, "cut short without its newline"))
        elif row is None or len(row) != len(header) or not _is_numbers(row, header):
            damaged.append((number, "not a row of this file's columns"))
        else:
            rows.append(row)
    return header, rows, damaged


def _parse_line(line: bytes) -> list[str] | None:
    try:
        return next(csv.reader([line.decode("utf-8").rstrip("\r")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


def _is_name(text: str) -> bool:
    return text.replace("_", "").isalnum()


def _is_numbers(row: list[str], header: list[str]) -> bool:
    """Every cell a number or empty, and the epoch a whole number of at least 1."""
    for value in row:
        if value == "":
            continue
        try:
            float(value)
        except ValueError:
            return False
    try:
        epoch = float(row[header.index("epoch")])
    except ValueError:
        return False
    return math.isfinite(epoch) and epoch >= 1 and epoch == int(epoch)
