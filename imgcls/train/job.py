"""``train(cfg) -> RunResult``: the plain function behind ``imgcls train``.

It validates and builds everything first, and only then creates the run directory, so a
mistake in the config leaves nothing behind. Tests call it directly; Hydra is only the CLI.
"""

from __future__ import annotations

import logging
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

from imgcls.config import validate
from imgcls.data.loader import DeviceLoader
from imgcls.errors import NonFiniteLossError, TrainingInterrupted, UserError
from imgcls.models.facts import count_flops, count_parameters
from imgcls.progress import is_terminal
from imgcls.runs import RunDirectory, new_run_dir
from imgcls.sweeps import config_hash
from imgcls.train import build
from imgcls.train.checkpoint import load_checkpoint
from imgcls.train.devices import resolve_precision, select_device
from imgcls.train.engine import Engine, EngineSettings, evaluate
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
    cfg: DictConfig, run_dir: str | Path | None = None, overrides: Sequence[str] = ()
) -> RunResult:
    """Train the composed config ``cfg`` into ``run_dir`` (a new folder under outputs/ if None)."""
    started = time.perf_counter()
    validate(cfg)
    trainer = cfg.trainer
    seed_everything(cfg.seed)
    device = select_device(str(trainer.device))
    precision = resolve_precision(str(trainer.precision), device)

    data = build.build_dataset(cfg)
    if trainer.batch_size > len(data.train):
        raise UserError(
            f"trainer.batch_size={trainer.batch_size} is larger than the {len(data.train)} "
            f"training images of {data.name}; use at most {len(data.train)}"
        )
    model = build.build_model(cfg, data).to(device)
    regularizers = build.build_regularizers(cfg)
    optimizer = build.build_optimizer(cfg, model.parameters(), regularizers)
    augment = build.build_augment(cfg)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(cfg.seed))
    on_device = (data.train.to(device), data.val.to(device), data.test.to(device))
    train_loader = DeviceLoader(
        on_device[0], trainer.batch_size, data.mean, data.std,
        shuffle=True, augment=augment, generator=generator,
    )  # fmt: skip
    val_loader = DeviceLoader(on_device[1], trainer.eval_batch_size, data.mean, data.std)
    test_loader = DeviceLoader(on_device[2], trainer.eval_batch_size, data.mean, data.std)
    scheduler = build.build_scheduler(cfg, optimizer, len(train_loader), trainer.epochs)

    run = RunDirectory(run_dir or new_run_dir(cfg.output_root, cfg.model.name, data.name))
    run.prepare()
    plain_config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    run.write_config(plain_config, overrides)
    run.attach_log()
    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run.path),
        "model": cfg.model.name,
        "dataset": data.name,
        "seed": int(cfg.seed),
        "config_hash": config_hash(cfg),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "device": str(device),
        "precision": precision,
        "params": count_parameters(model),
        "flops": count_flops(model, (data.channels, *data.image_size), device),
        "classes": data.classes,
        "data": data.spec(),
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    run.write_summary(summary)
    logger.info(f"run directory: {run.path}")
    logger.info(f"{data.describe()}; model {cfg.model.name} with {summary['params']:,} parameters")
    logger.info(
        f"device {device}, precision {precision}, {torch.get_num_threads()} torch threads, "
        f"{trainer.epochs} epochs"
    )

    engine = Engine(
        model, optimizer, scheduler, train_loader, val_loader, run,
        EngineSettings(
            epochs=trainer.epochs,
            precision=precision,
            log_every=trainer.log_every,
            monitor=trainer.monitor,
            monitor_mode=trainer.monitor_mode.value
            if hasattr(trainer.monitor_mode, "value") else str(trainer.monitor_mode),
            show_progress=is_terminal(),
        ),
        label_smoothing=sum(r.label_smoothing for r in regularizers),
        regularizers=regularizers,
        checkpoint_extra={"classes": data.classes, "config": plain_config, "data": data.spec()},
    )  # fmt: skip
    try:
        fit = engine.fit()
        best = load_checkpoint(run.checkpoint("best"), map_location=device)
        model.load_state_dict(best["model"])
        test = evaluate(model, test_loader, precision)
        summary.update(
            status="completed",
            epochs_completed=fit.epochs_completed,
            steps=fit.steps,
            best={"epoch": fit.best_epoch, "metric": trainer.monitor, "value": fit.best_value,
                  **fit.best_metrics},
            test=test,
            train_seconds=round(fit.train_seconds, 3),
        )  # fmt: skip
        logger.info(
            f"best epoch {fit.best_epoch} ({trainer.monitor} {fit.best_value:.4f}); "
            f"test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}"
        )
    except NonFiniteLossError as error:
        _finish(run, summary, started, "failed", error)
        raise
    except KeyboardInterrupt as error:
        _finish(run, summary, started, "interrupted", error)
        raise TrainingInterrupted(f"interrupted; state kept in {run.path}") from error
    except BaseException as error:
        _finish(run, summary, started, "failed", error)
        raise
    _finish(run, summary, started, "completed")
    return RunResult(run.path, summary)


def _finish(
    run: RunDirectory,
    summary: dict[str, Any],
    started: float,
    status: str,
    error: BaseException | None = None,
) -> None:
    summary["status"] = status
    summary["finished_at"] = datetime.now().isoformat(timespec="seconds")
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    if error is not None:
        summary["error"] = str(error) or type(error).__name__
        logger.error(summary["error"])
    run.write_summary(summary)
    logger.info(f"summary: {run.summary_path}")
    run.detach_log()
