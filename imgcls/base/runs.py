"""The run directory: its paths, atomic writers, the metrics CSV, the summary and train.log.

<run>/.hydra/config.yaml overrides.yaml   the resolved config and the overrides
<run>/train.log                           what the console showed, as plain text
<run>/metrics.csv                         one row per epoch
<run>/summary.json                        status, best epoch, test metrics, facts
<run>/checkpoints/last.pt best.pt         written atomically (temp file + rename)
<run>/plots/                              figures
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir

LOG_FORMAT = "%(message)s"
_UMASK = os.umask(0)
os.umask(_UMASK)
logger = logging.getLogger("imgcls")


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``.

    A crash (even kill -9) leaves either the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, default=str))


def new_run_dir(root: str | Path, model: str, dataset: str) -> Path:
    """A fresh ``<root>/<date>/<time>_<model>_<dataset>`` folder, never shared with another run."""
    now = datetime.now()
    base = Path(root) / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}_{model}_{dataset}"
    return Path(claim_dir(str(base)))


# What a run writes before its summary.json: safe to delete when it stopped before that.
STARTUP_FILES = (".hydra", "train.log", "checkpoints", "metrics.csv", "tensorboard", "plots")


def remove_unstarted(run_dir: Path, keep_folder: bool = False, empty_parent: bool = True) -> None:
    """Delete what a run that failed before training wrote (no summary.json, no checkpoint).

    Only the files a run makes are removed, so a folder the user named keeps anything else;
    ``keep_folder`` keeps the (then empty) folder itself, e.g. one that existed before, and
    ``empty_parent`` also removes the date folder above it when nothing else is there.
    """
    if not run_dir.is_dir() or (run_dir / "summary.json").exists():
        return
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("*.pt")):
        return
    for name in STARTUP_FILES:
        target = run_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)
    if keep_folder or any(run_dir.iterdir()):
        return
    run_dir.rmdir()
    parent = run_dir.parent
    if empty_parent and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()


def read_summary(path: Path) -> dict[str, Any]:
    """A summary.json as a dict; anything else (missing, not JSON, not an object) is a
    one-line UserError naming the file, so that callers can list the run as unreadable."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path} is unreadable ({error.strerror or error})") from error
    except ValueError as error:  # bad JSON, or bytes that are not UTF-8
        raise UserError(f"{path} is not valid JSON ({' '.join(str(error).split())})") from error
    if not isinstance(summary, dict):
        kind = "null" if summary is None else f"a JSON {type(summary).__name__}"
        raise UserError(f"{path} is not a run summary: it holds {kind}, not an object")
    return summary


class MetricsWriter:
    """Appends one row per epoch to metrics.csv; each row is flushed as a whole line."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(columns)
        if not path.exists():
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)

    def write(self, row: Mapping[str, Any]) -> None:
        values = [_format(row.get(c, "")) for c in self.columns]
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(values)
            handle.flush()


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class RunDirectory:
    """Paths and writers of one run; creating it does not write anything yet."""

    def __init__(self, path: str | Path, writable: bool = True) -> None:
        self.path = Path(path)
        # False on DDP ranks other than 0: they read the run directory but never write to it.
        self.writable = writable
        self._log_handler: logging.Handler | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}.pt"

    def prepare(self) -> None:
        if not self.writable:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)

    def write_config(self, config: Mapping[str, Any], overrides: Sequence[str]) -> None:
        """Write ``.hydra/config.yaml`` and ``overrides.yaml`` unless Hydra already did."""
        if not self.writable:
            return

        hydra_dir = self.path / ".hydra"
        if not (hydra_dir / "config.yaml").exists():
            atomic_write(
                hydra_dir / "config.yaml",
                lambda f: yaml.safe_dump(dict(config), f, sort_keys=False),
            )
        if not (hydra_dir / "overrides.yaml").exists():
            atomic_write(hydra_dir / "overrides.yaml", lambda f: yaml.safe_dump(list(overrides), f))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        if not self.writable:
            return
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        return read_summary(self.summary_path)

    def attach_log(self) -> None:
        """Copy the ``imgcls`` logger's messages into train.log for the duration of the run."""
        if not self.writable:
            return
        handler = logging.FileHandler(self.path / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        self._log_handler = handler

    def detach_log(self) -> None:
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


def refuse_completed(run_dir: Path) -> None:
    """A folder whose summary.json says completed is never trained into again."""
    try:
        status = read_summary(run_dir / "summary.json").get("status")
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
