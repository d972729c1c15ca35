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
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from imgcls.config import claim_dir

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
        import yaml

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
        return json.loads(self.summary_path.read_text())

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
