"""``train(cfg) -> RunResult``: the plain function behind ``imgcls train``.

It reads as build -> fit -> test. Everything is validated and built first, and only then
is the run directory written, so a mistake in the config leaves nothing behind. Tests call
it directly; Hydra is only the CLI. Continuing a run is :mod:`imgcls.app.resume`'s job: it
passes the checkpoint in as ``resume_state``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn.metrics  # noqa: F401  (every run scores with it; imported here, it counts as
import sklearn.model_selection  # noqa: F401  start-up like torch, not as the data's time)
import torch
from omegaconf import DictConfig, OmegaConf

import imgcls
from imgcls.app import calibration
from imgcls.app.build import Training, build_training, place
from imgcls.app.run_plots import write_reliability_plot, write_run_plots
from imgcls.app.sweeps import config_hash
from imgcls.app.thresholds import multilabel_test_metrics, store_thresholds, tune_on_validation
from imgcls.app.validation import validate
from imgcls.base.checkpoint import inference_state, load_checkpoint
from imgcls.base.errors import TrainingInterrupted, UserError, one_line
from imgcls.base.processes import process_identity
from imgcls.base.record import RunFolder, Summary
from imgcls.base.runs import (
    RunDirectory,
    new_run_dir,
    refuse_completed,
    remove_unstarted,
    truncate_metrics,
)
from imgcls.base.signals import signals_held
from imgcls.base.versions import git_commit, library_versions
from imgcls.config.values import hyperparameters
from imgcls.data.targets import MULTILABEL, is_multilabel
from imgcls.evaluate.html_report import write_run_report
from imgcls.evaluate.metrics import balanced_figures
from imgcls.evaluate.multilabel import threshold_map
from imgcls.evaluate.out_of_fold import write_fold_predictions
from imgcls.loggers import Loggers, start_loggers
from imgcls.models.facts import count_flops, count_parameters
from imgcls.train.backends import backend_settings
from imgcls.train.devices import peak_tflops, throughput
from imgcls.train.engine import Engine, FitResult, Predictions, evaluate_and_predict
from imgcls.train.tta import with_tta

logger = logging.getLogger("imgcls")


@dataclass
class RunResult:
    """What :func:`train` returns: the run's folder and its summary as written."""

    run_dir: Path
    record: Summary

    @property
    def folder(self) -> RunFolder:
        """The run's folder, to find its files."""
        return RunFolder(self.run_dir)

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json's content as a dict (what users and tests read from the file)."""
        return self.record.to_dict()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators, so one seed gives one run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume_state: dict[str, Any] | None = None,
) -> RunResult:
    """Train the composed config ``cfg`` into ``run_dir`` (a new folder under outputs/ if None).

    ``resume_state`` is a checkpoint to continue from in ``run_dir`` (passed by
    :func:`imgcls.app.resume.continue_run`); ``cfg.resume`` is never read here.
    """
    started = time.perf_counter()
    startup = started - _previous_job_end()  # imports (torch, scikit-learn), composition, Hydra
    validate(cfg)
    seed_everything(cfg.seed)
    where = place(cfg.trainer)
    with backend_settings(where.device, bool(cfg.trainer.deterministic)):
        if resume_state is None and run_dir is not None and where.processes.is_main:
            refuse_completed(Path(run_dir))  # a finished run is never trained over
        parts = build_training(cfg, where)
        if calibration.wanted(cfg):  # a multi-label run is refused before anything is written
            calibration.check_task(parts.data.task)
        if resume_state is not None and not parts.method.resumable:
            raise UserError(f"method={parts.method.name} runs cannot be resumed; start again")
        run = RunDirectory(
            run_dir or new_run_dir(cfg.output_root, cfg.model.name, parts.data.name),
            writable=where.processes.is_main,
        )
        plain_config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        engine = _engine(parts, run, plain_config)
        summary = _start_summary(cfg, parts, run)
        summary.timings = {"startup": round(startup, 3), **_rounded(parts.seconds)}
        if resume_state is not None:
            _restore(engine, run, summary, resume_state)
        loggers = _open_run(
            cfg,
            run,
            overrides,
            summary,
            plain_config,
            new=run_dir is None,
            resume_state=resume_state,
        )
        _log_start(cfg, parts, run, summary, resume_state)
        try:
            report = bool(OmegaConf.select(cfg, "report.html", default=True))
            with run_status(run, summary, started, loggers, report=report):
                engine.on_epoch_end.append(loggers.log_epoch)
                predictions = _fit_and_test(cfg, parts, engine, run, summary)
                _draw_plots(parts, run, summary, predictions)
        finally:
            _mark_job_end()
        return RunResult(run.path, summary)


def _engine(parts: Training, run: RunDirectory, plain_config: dict[str, Any]) -> Engine:
    data = parts.data
    return Engine(
        parts.model,
        parts.optimizer,
        parts.scheduler,
        parts.loaders.train,
        parts.loaders.val,
        run,
        parts.trainer,
        parts.runtime,
        label_smoothing=parts.label_smoothing,
        regularizers=parts.regularizers,
        checkpoint_extra={"classes": data.classes, "config": plain_config, "data": data.spec()},
        step_loss=parts.method.step_loss,
        epoch_metrics=parts.method.epoch_metrics,
        loss=parts.loss,
        task=data.task,
    )


def _start_summary(cfg: DictConfig, parts: Training, run: RunDirectory) -> Summary:
    """summary.json as the run starts: what it trains, where, and with which versions."""
    data, device = parts.data, parts.place.device
    return Summary(
        status="running",
        run_dir=str(run.path),
        model=cfg.model.name,
        dataset=data.name,
        seed=int(cfg.seed),
        hyperparameters=hyperparameters(cfg),
        config_hash=config_hash(cfg),
        started_at=_now(),
        device=str(device),
        precision=parts.place.precision,
        params=count_parameters(parts.model),
        flops=count_flops(parts.model, (data.channels, *data.image_size), device),
        classes=data.classes,
        data={**data.spec(), **(data.folds.record() if data.folds else {})},
        method=parts.method.name,
        finetune=parts.tune.summary(),
        init_from_data_seconds=parts.init_seconds,  # e.g. airbench's whitening; else None
        versions=library_versions(),
        git_commit=git_commit(),
        pid=os.getpid(),
        process=process_identity(),
    )


def _restore(engine: Engine, run: RunDirectory, summary: Summary, state: dict[str, Any]) -> None:
    """Continue from ``state``: a checkpoint that does not fit fails here, before any write."""
    engine.load_state_dict(state)
    previous = run.read_summary()
    truncate_metrics(run.folder.metrics_csv, int(state["epoch"]))
    summary.started_at = previous.started_at or summary.started_at
    summary.resumed = [*(previous.resumed or []), _now()]
    summary.resumed_from = {"epoch": state["epoch"], "step": state["step"]}


def _open_run(
    cfg: DictConfig,
    run: RunDirectory,
    overrides: Sequence[str],
    summary: Summary,
    plain_config: dict[str, Any],
    *,
    new: bool,
    resume_state: dict[str, Any] | None,
) -> Loggers:
    """Write the folder's first files and start the loggers.

    A failure here leaves no half-made run behind: a folder imgcls made for this run is
    removed again.
    """
    is_main = run.writable
    loggers = Loggers([])
    try:
        if is_main:
            loggers = start_loggers(cfg, run.path, plain_config)
        run.prepare()
        if resume_state is None and is_main:  # a requeued job's own folder: no old rows
            run.folder.metrics_csv.unlink(missing_ok=True)
        run.write_config(plain_config, overrides)
        run.attach_log()
        run.write_summary(summary)
    except BaseException:
        run.detach_log()
        if new and resume_state is None and is_main:
            remove_unstarted(run.path)
        raise
    return loggers


def _log_start(
    cfg: DictConfig,
    parts: Training,
    run: RunDirectory,
    summary: Summary,
    resume_state: dict[str, Any] | None,
) -> None:
    logger.info(f"run directory: {run.path}")
    logger.info(
        f"{parts.data.describe()}; model {cfg.model.name} with {summary.params:,} parameters"
    )
    logger.info(
        f"device {parts.place.device}, precision {parts.place.precision}, "
        f"{torch.get_num_threads()} torch threads, {parts.trainer.run_epochs} epochs"
    )
    parts.tune.log()  # what fine-tuning loaded, replaced and froze
    if parts.init_seconds is not None:  # e.g. airbench's patch whitening, before step 0
        logger.info(f"model initialised from training images in {parts.init_seconds:.3f}s")
    if resume_state is not None:
        progress = resume_state.get("epoch_progress")
        inside = f" (in epoch {progress['epoch']})" if progress else ""
        logger.info(
            f"resuming after epoch {resume_state['epoch']}, step {resume_state['step']}{inside}"
        )


def _fit_and_test(
    cfg: DictConfig, parts: Training, engine: Engine, run: RunDirectory, summary: Summary
) -> Predictions:
    """Fit, then evaluate the best checkpoint on the test split; summary.json has the results
    (and where the time went) before the plots are drawn.

    The test split is inferred once: the probabilities of that pass are returned for
    test_metrics.json and the figures, so they agree with summary.json's test metrics.
    """
    fit = engine.fit()
    model, trainer = parts.model, parts.trainer
    test_started = time.perf_counter()
    best = load_checkpoint(run.folder.best_checkpoint, map_location=parts.place.device)
    model.load_state_dict(inference_state(best))
    tested = with_tta(model, trainer.test_tta)  # test-time augmentation when views are named
    test, predictions = evaluate_and_predict(
        tested, parts.loaders.test, parts.runtime.precision, max_batches=trainer.val_batch_limit
    )
    test_seconds = time.perf_counter() - test_started
    if parts.data.task == MULTILABEL:
        test = _apply_thresholds(parts, tested, run, summary, test, predictions)
    if parts.data.folds is not None:
        _write_fold_predictions(parts, tested, run)
    monitor = engine.monitor
    summary.epochs_completed = fit.epochs_completed
    summary.steps = fit.steps
    summary.best = {
        "epoch": fit.best_epoch,
        "metric": monitor,
        "value": fit.best_value,
        **fit.best_metrics,
    }
    summary.test = {
        **test,
        **_balanced_test_figures(predictions, parts.data.classes),
        **calibration.test_figures(predictions),  # ECE, MCE, NLL, Brier: every run
    }
    if calibration.wanted(cfg):
        _calibrate(parts, tested, run, summary, predictions)
    summary.train_seconds = round(fit.train_seconds, 3)
    summary.stopped_early = fit.stopped_early
    summary.extra.update(parts.method.final_metrics(model))  # e.g. a target domain's metrics
    summary.timings = {
        **(summary.timings or {}),
        "compile": round(fit.compile_seconds, 3) if trainer.compile_mode else None,
        "training": round(fit.train_seconds, 3),
        "validation": round(fit.validation_seconds, 3),
        "test": round(test_seconds, 3),
        "checkpoint_writes": round(engine.checkpointer.write_seconds, 3),
        "checkpoint_waits": round(engine.checkpointer.blocked_seconds, 3),
    }
    peak = peak_tflops(parts.place.device, parts.place.precision)
    summary.throughput = throughput(_steady_images_per_second(fit), summary.flops or 0, peak)
    run.write_summary(summary)  # the results are on disk before the plots are drawn
    headline = f"mAP {test['map']:.4f}" if "map" in test else f"accuracy {test['accuracy']:.4f}"
    if summary.thresholds is not None:  # multi-label, at the thresholds tuned on validation
        headline += f", micro F1 {test['f1_micro']:.4f}, macro F1 {test['f1_macro']:.4f}"
    logger.info(
        f"best epoch {fit.best_epoch} ({monitor} {fit.best_value:.4f}); "
        f"test {headline}{_balanced_text(summary.test)}, loss {test['loss']:.4f}"
    )
    return predictions


def _apply_thresholds(
    parts: Training,
    model: torch.nn.Module,
    run: RunDirectory,
    summary: Summary,
    test: dict[str, Any],
    predictions: Predictions,
) -> dict[str, Any]:
    """A multi-label run's thresholds: tuned on the validation predictions of the model the
    test ran with, stored in best.pt and summary.json; returns the test metrics at them."""
    started = time.perf_counter()
    thresholds = tune_on_validation(
        model, parts.loaders.val, parts.runtime.precision, parts.trainer.val_batch_limit
    )
    if run.writable:
        store_thresholds(run.folder.best_checkpoint, thresholds)
    summary.thresholds = threshold_map(parts.data.classes, thresholds)
    summary.timings = {
        **(summary.timings or {}),
        "thresholds": round(time.perf_counter() - started, 3),
    }
    return multilabel_test_metrics(test, predictions, parts.data.classes, thresholds)


def _write_fold_predictions(parts: Training, model: torch.nn.Module, run: RunDirectory) -> None:
    """A k-fold run's val_predictions.csv: every image of its held-out fold (no batch
    limit), predicted by the model the test ran with, with its index in the training pool;
    the sweep joins them into out-of-fold predictions. Every DDP process predicts (as for the
    test split); the main one writes."""
    folds = parts.data.folds
    assert folds is not None
    _, predictions = evaluate_and_predict(model, parts.loaders.val, parts.runtime.precision)
    if not run.writable:
        return
    write_fold_predictions(
        run.folder.val_predictions_csv,
        folds.val_index,
        folds.val_paths,
        predictions.labels.numpy(),
        predictions.probabilities.float().numpy(),
        parts.data.classes,
    )


def _calibrate(
    parts: Training,
    model: torch.nn.Module,
    run: RunDirectory,
    summary: Summary,
    predictions: Predictions,
) -> None:
    """``calibrate=temperature``: T fitted on the validation logits of the model the test ran
    with, stored in best.pt, and summary.json's ``calibration`` block (test figures before
    and after); the test metrics stay the engine's."""
    started = time.perf_counter()
    checkpoint = run.folder.best_checkpoint if run.writable else None
    summary.calibration = calibration.calibrate_run(
        model,
        parts.loaders.val,
        parts.runtime.precision,
        predictions,
        checkpoint,
        parts.trainer.val_batch_limit,
    )
    block = summary.calibration
    logger.info(
        f"temperature {block['temperature']:.4f} (fitted on val): test ECE "
        f"{block['before']['ece']:.4f} -> {block['after']['ece']:.4f}, NLL "
        f"{block['before']['nll']:.4f} -> {block['after']['nll']:.4f}"
    )
    summary.timings = {
        **(summary.timings or {}),
        "calibration": round(time.perf_counter() - started, 3),
    }


def _balanced_test_figures(predictions: Predictions, classes: list[str]) -> dict[str, Any]:
    """Balanced accuracy and per-class recall of a single-label test split, from the pass
    that scored it (scikit-learn's, so they equal a recomputation from predictions.csv)."""
    if is_multilabel(predictions.labels) or not len(predictions.labels):
        return {}
    return balanced_figures(
        predictions.labels.numpy(), predictions.probabilities.float().numpy(), classes
    )


def _balanced_text(test: dict[str, Any]) -> str:
    value = test.get("balanced_accuracy")
    return f" (balanced {value:.4f})" if isinstance(value, float) else ""


def _draw_plots(
    parts: Training, run: RunDirectory, summary: Summary, predictions: Predictions
) -> None:
    """curves, confusion matrix and predictions, and test_metrics.json, from the test
    evaluation's ``predictions``; a plotting problem never fails the run."""
    started = time.perf_counter()
    if run.writable:
        tta = parts.trainer.test_tta
        thresholds = list(summary.thresholds.values()) if summary.thresholds else None
        write_run_plots(
            run.folder,
            predictions,
            parts.data.test,
            parts.data.classes,
            tta,
            thresholds,
            figures=parts.trainer.plots,
        )
        if parts.trainer.plots:
            write_reliability_plot(run.folder, predictions, summary.calibration)
    if summary.timings is not None:
        summary.timings["plots"] = round(time.perf_counter() - started, 3)


def _steady_images_per_second(fit: FitResult) -> float | None:
    """The median training images/s over the epochs after the first (which warms caches and
    autotuners up), or the first's when there is only one."""
    rates = [row.get("images_per_second") for row in fit.history]
    rates = [r for r in rates if isinstance(r, float) and math.isfinite(r)]
    if not rates:
        return None
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


_last_job_end: float | None = None


def _previous_job_end() -> float:
    """When the previous job of this process ended, or when imgcls was first imported."""
    return _last_job_end if _last_job_end is not None else imgcls.IMPORTED_AT


def _mark_job_end() -> None:
    global _last_job_end
    _last_job_end = time.perf_counter()


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 3) for key, value in seconds.items()}


@contextmanager
def run_status(
    run: RunDirectory,
    summary: Summary,
    started: float,
    loggers: Loggers,
    *,
    report: bool = False,
) -> Iterator[None]:
    """Record how the run ended in summary.json: completed, failed or interrupted.

    Whatever ends the block, the summary is written, the loggers are finished, report.html is
    written (with ``report``) and train.log is closed; the error goes on to the caller (Ctrl-C
    as :class:`TrainingInterrupted`).
    """
    try:
        yield
    except (TrainingInterrupted, KeyboardInterrupt) as error:
        _finish(run, summary, started, loggers, "interrupted", error, report)
        if isinstance(error, KeyboardInterrupt):  # a signal's exit code (129, 130, 143) goes on
            stopped = TrainingInterrupted(
                f"{error or 'interrupted'}; state kept in {run.path}; continue with: "
                f"imgcls train resume={run.path}"
            )
            stopped.exit_code = getattr(error, "exit_code", TrainingInterrupted.exit_code)
            raise stopped from error
        raise
    except BaseException as error:  # NonFiniteLossError and anything unexpected
        _finish(run, summary, started, loggers, "failed", error, report)
        raise
    _finish(run, summary, started, loggers, "completed", report=report)


def _finish(
    run: RunDirectory,
    summary: Summary,
    started: float,
    loggers: Loggers,
    status: str,
    error: BaseException | None = None,
    report: bool = False,
) -> None:
    """Record how the run ended, then finish the loggers, report.html and train.log.

    Stop signals are held meanwhile: one arriving while a finished run writes its summary
    would otherwise leave summary.json saying "running" (a completed run reads as one still
    going). A signal held while a run completes is raised afterwards, so the command (and a
    sweep) still stops; one held while a run already stops or fails adds nothing."""
    with signals_held(raise_after=status == "completed"):
        summary.status = status
        summary.finished_at = _now()
        summary.wall_seconds = round(time.perf_counter() - started, 3)
        if error is not None:
            summary.error = str(error) or type(error).__name__
            logger.error(summary.error)
        try:  # train.log is closed even when the summary cannot be written (a full disk)
            run.write_summary(summary)
            loggers.finish(summary.to_dict())
            if report and run.writable:
                write_report_quietly(run.folder)
            logger.info(f"summary: {run.folder.summary_json}")
        finally:
            run.detach_log()


def write_report_quietly(run_dir: RunFolder | Path) -> Path | None:
    """``<run>/report.html`` (the run's HTML report), logged with the time it took; a
    problem is one warning line and never fails the run."""
    started = time.perf_counter()
    try:
        path = write_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the run's results are already on disk
        logger.warning(f"could not write report.html: {one_line(error, typed=True)}")
        return None
    logger.info(f"report: {path} ({time.perf_counter() - started:.2f}s)")
    return path


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
