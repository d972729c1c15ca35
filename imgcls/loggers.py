"""Experiment loggers (the ``logger`` config group): csv, tensorboard, mlflow, several at once.

An experiment logger receives the resolved config when the run starts, each epoch's metrics row (the
same row as metrics.csv) and the final summary. ``csv`` adds nothing to the run directory's
own files (metrics.csv and summary.json are always written); the others mirror them into
TensorBoard event files or an MLflow tracking store.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from imgcls.base.errors import UserError, one_line
from imgcls.config.options.loggers import CsvOptions, MlflowOptions, TensorBoardOptions
from imgcls.config.values import component_options
from imgcls.registry import LOGGERS

logger = logging.getLogger("imgcls")


class RunLogger:
    """Receives a run's config, per-epoch metrics and final summary; the base does nothing."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row (``epoch``, ``lr``, ``train_loss``, ``val_accuracy``, ...)."""

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run ended (completed, failed or interrupted): flush and close."""


def numeric(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a row, without the step counters."""
    values = {}
    for key, value in row.items():
        if key in ("epoch", "step") or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            values[key] = float(value)
    return values


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": "0.1"}`` for hyper-parameter logs."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def final_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``test_accuracy``, ``test_loss``, ``best_val_accuracy``, ... from summary.json."""
    values = {f"test_{k}": v for k, v in numeric(summary.get("test") or {}).items()}
    best = summary.get("best") or {}
    if isinstance(best.get("value"), (int, float)):
        values[f"best_{best.get('metric', 'value')}"] = float(best["value"])
    return values


@LOGGERS.register("csv", CsvOptions)
class CsvLogger(RunLogger):
    """Nothing beyond the run directory's own metrics.csv and summary.json."""

    def __init__(self, options: CsvOptions, *, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir


@LOGGERS.register("tensorboard", TensorBoardOptions)
class TensorBoardLogger(RunLogger):
    """The config as text, each epoch's numbers and the final ones as TensorBoard scalars."""

    def __init__(
        self, options: TensorBoardOptions, *, run_dir: Path, config: Mapping[str, Any]
    ) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise UserError(
                "logger=tensorboard needs the tensorboard package: pip install tensorboard"
            ) from error
        self.path = Path(run_dir) / options.log_dir
        self.writer = SummaryWriter(log_dir=str(self.path))
        text = "\n".join(f"    {k}: {v}" for k, v in flatten(config).items())
        self.writer.add_text("config", text, 0)
        self.epoch = 0

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.epoch = int(row["epoch"])
        for key, value in numeric(row).items():
            self.writer.add_scalar(key, value, self.epoch)
        self.writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        for key, value in final_metrics(summary).items():
            self.writer.add_scalar(key, value, self.epoch)
        self.writer.close()


@LOGGERS.register("mlflow", MlflowOptions)
class MlflowLogger(RunLogger):
    """One MLflow run per imgcls run: params (the flattened config), metrics per epoch, tags.

    ``tracking_uri`` defaults to the file store ``<output_root>/mlruns``; MLflow 3 keeps the
    file store in maintenance mode, so imgcls opts in to it explicitly for file URIs.
    """

    def __init__(
        self,
        options: MlflowOptions,
        *,
        run_dir: Path,
        config: Mapping[str, Any],
        output_root: str = "outputs",
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as error:
            raise UserError(
                "logger=mlflow needs the mlflow package: pip install mlflow-skinny"
            ) from error
        uri = options.tracking_uri or Path(output_root, "mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        name = options.experiment
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        run = self.client.create_run(
            experiment_id, run_name=Path(run_dir).name, tags={"imgcls.run_dir": str(run_dir)}
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        self.epoch = 0

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        self.epoch = int(row["epoch"])
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, self.epoch) for k, v in numeric(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, summary: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, self.epoch) for k, v in final_metrics(summary).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        status = {"completed": "FINISHED", "interrupted": "KILLED"}.get(
            str(summary.get("status")), "FAILED"
        )
        self.client.set_tag(self.run_id, "imgcls.status", str(summary.get("status")))
        self.client.set_terminated(self.run_id, status)


class Loggers:
    """The selected loggers as one: a failing one is reported, never stops training.

    One that fails while logging an epoch (a tracking server gone away) is reported
    once and dropped; the run's own metrics.csv and summary.json stay complete.
    """

    def __init__(self, loggers: Sequence[RunLogger]) -> None:
        self.loggers = list(loggers)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for run_logger in list(self.loggers):
            try:
                run_logger.log_epoch(row)
            except Exception as error:
                logger.warning(f"{type(run_logger).__name__} stopped logging: {_brief(error)}")
                self.loggers.remove(run_logger)

    def finish(self, summary: Mapping[str, Any]) -> None:
        for run_logger in self.loggers:
            try:
                run_logger.finish(summary)
            except Exception as error:  # the run's own files are complete; say so and go on
                logger.warning(f"{type(run_logger).__name__} could not finish: {_brief(error)}")


def start_loggers(cfg: Any, run_dir: Path, config: Mapping[str, Any]) -> Loggers:
    """Build the loggers selected in ``cfg.logger`` for a run that has just started."""
    loggers = []
    for name, prefix, options in component_options(cfg, "logger"):
        try:
            loggers.append(
                LOGGERS.build(
                    name,
                    options,
                    prefix=prefix,
                    run_dir=Path(run_dir),
                    config=config,
                    output_root=str(cfg.get("output_root", "outputs")),
                )
            )
        except UserError:
            raise
        except Exception as error:  # an unreachable server, a read-only store, ...
            Loggers(loggers).finish({"status": "failed"})
            raise UserError(f"logger={name} could not start: {_brief(error)}") from error
    return Loggers(loggers)


def _brief(error: BaseException) -> str:
    """The first line of an error (MLflow's carry a traceback of the server's response)."""
    return one_line(error, first_line=True, limit=300)
