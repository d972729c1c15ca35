"""The run directory's writers: folder creation, the metrics CSV, summary.json and train.log.

Which files a run folder holds, and their names, is :mod:`imgcls.base.record`'s business;
this module writes them while a run trains, and removes what a run that never started left.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from imgcls.base.atomic import atomic_write, write_json
from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir, made_for, remove_made
from imgcls.base.record import RunFolder, Summary, write_overrides

__all__ = [
    "MetricsWriter",
    "RunDirectory",
    "atomic_write",
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
    """Appends one row per epoch to metrics.csv; each row is flushed as a whole line."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(columns)
        if not path.exists():
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one epoch's row and flush it, so a crash keeps every finished epoch."""
        values = [_format(row.get(c, "")) for c in self.columns]
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(values)
            handle.flush()


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
        """Write ``.hydra/config.yaml`` and ``overrides.yaml`` unless Hydra already did."""
        if not self.writable:
            return
        if not self.folder.config_file.exists():
            atomic_write(
                self.folder.config_file,
                lambda f: yaml.safe_dump(dict(config), f, sort_keys=False),
            )
        if not self.folder.overrides_file.exists():
            write_overrides(self.folder.overrides_file, overrides)

    def write_summary(self, summary: Summary) -> None:
        """Write summary.json atomically (on the rank that writes)."""
        if not self.writable:
            return
        summary.write(self.folder.summary_json)

    def read_summary(self) -> Summary:
        """The summary.json already in the folder (a one-line UserError when unreadable)."""
        return self.folder.read_summary()

    def attach_log(self) -> None:
        """Copy the ``imgcls`` logger's messages into train.log for the duration of the run."""
        if not self.writable:
            return
        handler = logging.FileHandler(self.folder.train_log, encoding="utf-8")
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


def truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metrics.csv rows after the checkpoint's epoch (written just before a kill -9)."""
    if not path.exists():
        return
    rows = list(csv.reader(path.open(newline="")))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else 0
    kept = [r for r in body if r and int(r[column]) <= epochs_done]
    if len(kept) == len(body):
        return
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *kept])
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
