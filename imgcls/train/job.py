"""``train(cfg) -> RunResult``: the plain function behind ``imgcls train``.

It validates and builds everything first, and only then creates the run directory, so a
mistake in the config leaves nothing behind. Tests call it directly; Hydra is only the CLI.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from imgcls import distributed
from imgcls.config import hyperparameters, validate
from imgcls.data.pipeline import make_loaders
from imgcls.errors import NonFiniteLossError, TrainingInterrupted, UserError
from imgcls.evaluate.run_plots import write_run_plots
from imgcls.evaluate.trackers import Trackers, start_trackers
from imgcls.models.facts import count_flops, count_parameters
from imgcls.progress import is_terminal
from imgcls.runs import RunDirectory, new_run_dir, refuse_completed, remove_unstarted
from imgcls.sweeps import config_hash
from imgcls.train import build
from imgcls.train.checkpoint import inference_state, load_checkpoint
from imgcls.train.determinism import deterministic_mode
from imgcls.train.devices import resolve_precision, select_device
from imgcls.train.engine import Engine, EngineSettings, evaluate
from imgcls.transfer import setup as transfer
from imgcls.versions import git_commit, library_versions

logger = logging.getLogger("imgcls")


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]


def seed_everything(seed: int) -> None:
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

    ``cfg.resume`` (a run directory or ``auto``) continues an unfinished run instead;
    ``resume_state`` is the checkpoint that :func:`imgcls.train.resume.resume_run` passes.
    """
    if resume_state is None and cfg.get("resume"):
        from imgcls.train import resume

        target = resume.resolve(cfg)
        if target is not None:
            return resume.resume_run(target)
    with deterministic_mode(bool(cfg.trainer.deterministic)):
        return _train(cfg, run_dir, overrides, resume_state)


def _train(
    cfg: DictConfig,
    run_dir: str | Path | None,
    overrides: Sequence[str],
    resume_state: dict[str, Any] | None,
) -> RunResult:
    started = time.perf_counter()
    validate(cfg)
    trainer = cfg.trainer
    fast = bool(trainer.fast_dev_run)
    seed_everything(cfg.seed)
    device = select_device(str(trainer.device))
    ctx = distributed.setup(str(trainer.strategy), device.type)
    if ctx.enabled:
        if device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        if trainer.batch_size % ctx.world_size:
            raise UserError(
                f"trainer.batch_size={trainer.batch_size} is the global batch: it must be "
                f"divisible by the {ctx.world_size} processes"
            )
        if not ctx.is_main:
            logger.setLevel(logging.WARNING)  # rank 0 alone reports and writes
    precision = resolve_precision(str(trainer.precision), device)
    if resume_state is None and run_dir is not None and ctx.is_main:
        refuse_completed(Path(run_dir))  # a finished run is never trained over

    data = build.build_dataset(cfg)
    if trainer.batch_size > len(data.train):
        raise UserError(
            f"trainer.batch_size={trainer.batch_size} is larger than the {len(data.train)} "
            f"training images of {data.name}; use at most {len(data.train)}"
        )
    model = build.build_model(cfg, data).to(device)
    tune = transfer.prepare_model(cfg, model, data)  # finetune.from / freeze, before L2-SP
    regularizers = build.build_regularizers(cfg)
    for regularizer in regularizers:
        regularizer.configure(model, cfg.model.name)
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build.build_optimizer(cfg, model.parameters(), regularizers)
    augment = build.build_augment(cfg)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(cfg.seed))
    loaders = make_loaders(
        data, cfg.get("data") or {}, batch_size=trainer.batch_size,
        eval_batch_size=trainer.eval_batch_size, device=device, augment=augment,
        generator=generator, num_workers=trainer.num_workers,
        channels_last=trainer.channels_last, shard=(ctx.rank, ctx.world_size),
    )  # fmt: skip
    data, train_loader, val_loader, test_loader = (
        loaders.data,
        loaders.train,
        loaders.val,
        loaders.test,
    )
    epochs = 1 if fast else trainer.epochs
    settings = EngineSettings(
        epochs=epochs,
        precision=precision,
        log_every=trainer.log_every,
        monitor=trainer.monitor,
        monitor_mode=_value(trainer.monitor_mode),
        show_progress=is_terminal(),
        gradient_clip=float(trainer.gradient_clip),
        gradient_clip_mode=_value(trainer.gradient_clip_mode),
        accumulate_batches=trainer.accumulate_batches,
        ema_decay=float(trainer.ema.decay),
        early_stopping_patience=trainer.early_stopping.patience,
        early_stopping_monitor=str(trainer.early_stopping.monitor),
        early_stopping_mode=_value(trainer.early_stopping.mode),
        early_stopping_min_delta=float(trainer.early_stopping.min_delta),
        save_top_k=trainer.save_top_k,
        limit_train_batches=1 if fast else trainer.limit_train_batches,
        limit_val_batches=1 if fast else 0,
        compile=bool(trainer.compile),
        distributed=ctx.enabled,
        is_main=ctx.is_main,
    )
    method = transfer.build_method(
        cfg, model=model, data=data, device=device, epochs=epochs,
        steps_per_epoch=settings.train_batches(len(train_loader)),
        batch_size=trainer.batch_size, eval_batch_size=trainer.eval_batch_size,
        label_smoothing=sum(r.label_smoothing for r in regularizers), seed=int(cfg.seed),
        precision=precision,
    )  # fmt: skip
    if resume_state is not None and not method.resumable:
        raise UserError(f"method={method.name} runs cannot be resumed; start the run again")
    transfer.configure_optimizer(optimizer, model, tune, method)
    scheduler = build.build_scheduler(
        cfg, optimizer, settings.optimizer_steps(len(train_loader)), epochs, settings.monitor_mode
    )

    run = RunDirectory(
        run_dir or new_run_dir(cfg.output_root, cfg.model.name, data.name), writable=ctx.is_main
    )
    plain_config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    engine = Engine(
        model, optimizer, scheduler, train_loader, val_loader, run, settings,
        label_smoothing=sum(r.label_smoothing for r in regularizers),
        regularizers=regularizers,
        checkpoint_extra={"classes": data.classes, "config": plain_config, "data": data.spec()},
        step_loss=method.step_loss, epoch_metrics=method.epoch_metrics,
    )  # fmt: skip
    previous: dict[str, Any] = {}
    if resume_state is not None:
        from imgcls.train import resume

        engine.restore(resume_state)  # a checkpoint that does not fit fails before any write
        previous = run.read_summary()
        resume.truncate_metrics(run.metrics_path, int(resume_state["epoch"]))
    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run.path),
        "model": cfg.model.name,
        "dataset": data.name,
        "seed": int(cfg.seed),
        "hyperparameters": hyperparameters(cfg),
        "config_hash": config_hash(cfg),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "device": str(device),
        "precision": precision,
        "params": count_parameters(model),
        "flops": count_flops(model, (data.channels, *data.image_size), device),
        "classes": data.classes,
        "data": data.spec(),
        "method": method.name,
        "finetune": tune.summary(),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "pid": os.getpid(),
    }
    if resume_state is not None:
        summary["started_at"] = previous.get("started_at", summary["started_at"])
        summary["resumed"] = [*previous.get("resumed", []), summary_time()]
        summary["resumed_from"] = {"epoch": resume_state["epoch"], "step": resume_state["step"]}
    trackers = Trackers([])
    try:  # the folder's first files; a failure here leaves no half-made run behind
        if ctx.is_main:
            trackers = start_trackers(cfg, run.path, plain_config)
        engine.on_epoch_end.append(trackers.log_epoch)
        run.prepare()
        if resume_state is None and ctx.is_main:  # a requeued job's own folder: no old rows
            run.metrics_path.unlink(missing_ok=True)
        run.write_config(plain_config, overrides)
        run.attach_log()
        run.write_summary(summary)
    except BaseException:
        run.detach_log()
        if run_dir is None and resume_state is None and ctx.is_main:
            remove_unstarted(run.path)
        raise
    logger.info(f"run directory: {run.path}")
    logger.info(f"{data.describe()}; model {cfg.model.name} with {summary['params']:,} parameters")
    logger.info(
        f"device {device}, precision {precision}, {torch.get_num_threads()} torch threads, "
        f"{epochs} epochs"
    )
    tune.log()  # what fine-tuning loaded, replaced and froze
    if resume_state is not None:
        logger.info(
            f"resuming after epoch {resume_state['epoch']}, step {resume_state['step']}"
            + (
                f" (in epoch {resume_state['epoch_progress']['epoch']})"
                if resume_state.get("epoch_progress")
                else ""
            )
        )
    try:
        fit = engine.fit()
        best = load_checkpoint(run.checkpoint("best"), map_location=device)
        model.load_state_dict(inference_state(best))
        test = evaluate(model, test_loader, precision, max_batches=1 if fast else 0)
        if ctx.is_main:
            write_run_plots(run.path, model, data.test, data.spec())
        summary.update(
            status="completed",
            epochs_completed=fit.epochs_completed,
            steps=fit.steps,
            best={"epoch": fit.best_epoch, "metric": trainer.monitor, "value": fit.best_value,
                  **fit.best_metrics},
            test=test,
            train_seconds=round(fit.train_seconds, 3),
            stopped_early=fit.stopped_early,
            **method.final_metrics(model),
        )  # fmt: skip
        logger.info(
            f"best epoch {fit.best_epoch} ({trainer.monitor} {fit.best_value:.4f}); "
            f"test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}"
        )
    except NonFiniteLossError as error:
        _finish(run, summary, started, "failed", error, trackers=trackers)
        raise
    except TrainingInterrupted as error:
        _finish(run, summary, started, "interrupted", error, trackers=trackers)
        raise
    except KeyboardInterrupt as error:
        _finish(run, summary, started, "interrupted", error, trackers=trackers)
        raise TrainingInterrupted(f"interrupted; state kept in {run.path}") from error
    except BaseException as error:
        _finish(run, summary, started, "failed", error, trackers=trackers)
        raise
    _finish(run, summary, started, "completed", trackers=trackers)
    return RunResult(run.path, summary)


def _finish(
    run: RunDirectory,
    summary: dict[str, Any],
    started: float,
    status: str,
    error: BaseException | None = None,
    trackers: Trackers | None = None,
) -> None:
    summary["status"] = status
    summary["finished_at"] = datetime.now().isoformat(timespec="seconds")
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    if error is not None:
        summary["error"] = str(error) or type(error).__name__
        logger.error(summary["error"])
    run.write_summary(summary)
    if trackers is not None:
        trackers.finish(summary)
    logger.info(f"summary: {run.summary_path}")
    run.detach_log()


def _value(option: Any) -> str:
    """An Enum config value (or its string) as a plain string."""
    return str(option.value if hasattr(option, "value") else option)


def summary_time() -> str:
    return datetime.now().isoformat(timespec="seconds")
