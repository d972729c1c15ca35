"""Options of the experiment loggers (``conf/logger/``); built by :mod:`imgcls.loggers`.

Several may be chosen at once (``logger=[csv,tensorboard]``): each is configured under its
own key (``logger.tensorboard.log_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imgcls.config.options.base import Options, schema


@schema("logger", "csv")
@dataclass
class CsvOptions(Options):
    """The run directory's own files (metrics.csv, summary.json), always written."""


@schema("logger", "tensorboard")
@dataclass
class TensorBoardOptions(Options):
    """TensorBoard event files in ``<run>/<log_dir>``."""

    log_dir: str = "tensorboard"


@schema("logger", "mlflow")
@dataclass
class MlflowOptions(Options):
    """MLflow tracking: ``tracking_uri`` (None: the file store ``<output_root>/mlruns``) and
    the experiment the runs are filed under."""

    tracking_uri: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)
    experiment: str = "imgcls"
