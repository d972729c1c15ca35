"""Config -> objects: every component is built from its registry by name."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from imgcls.config import component_options
from imgcls.data.augment import Augment
from imgcls.data.splits import DataSplits
from imgcls.errors import UserError
from imgcls.registry import AUGMENTS, DATASETS, MODELS, OPTIMIZERS, REGULARIZERS, SCHEDULERS
from imgcls.train.regularizers import Regularizer


def _one(cfg: DictConfig, group: str) -> tuple[str, str, dict[str, Any]]:
    return component_options(cfg, group)[0]


def build_dataset(cfg: DictConfig) -> DataSplits:
    name, prefix, options = _one(cfg, "dataset")
    return DATASETS.build(name, options, prefix=prefix)


def build_model(cfg: DictConfig, data: DataSplits) -> nn.Module:
    name, prefix, options = _one(cfg, "model")
    return MODELS.build(
        name,
        options,
        prefix=prefix,
        num_classes=data.num_classes,
        in_channels=data.channels,
        image_size=data.image_size,
    )


def build_augment(cfg: DictConfig) -> Augment:
    name, prefix, options = _one(cfg, "augment")
    return AUGMENTS.build(name, options, prefix=prefix)


def build_regularizers(cfg: DictConfig) -> list[Regularizer]:
    return [
        REGULARIZERS.build(name, options, prefix=prefix)
        for name, prefix, options in component_options(cfg, "regularizer")
    ]


def build_optimizer(
    cfg: DictConfig, params: Iterable[nn.Parameter], regularizers: list[Regularizer]
) -> torch.optim.Optimizer:
    name, prefix, options = _one(cfg, "optimizer")
    decays = [r.weight_decay for r in regularizers if r.weight_decay is not None]
    if decays:  # regularizer=l2 sets the weight decay, whatever the optimizer file says
        options["weight_decay"] = decays[-1]
    return OPTIMIZERS.build(name, options, prefix=prefix, params=params)


def build_scheduler(
    cfg: DictConfig,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    monitor_mode: str = "max",
) -> torch.optim.lr_scheduler.LRScheduler:
    """``steps_per_epoch`` counts optimizer steps (after accumulation and batch limits)."""
    name, prefix, options = _one(cfg, "scheduler")
    return SCHEDULERS.build(
        name,
        options,
        prefix=prefix,
        optimizer=optimizer,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        monitor_mode=monitor_mode,
    )


def check_training_values(cfg: DictConfig) -> None:
    """Build the regularizers, the optimizer and the schedule once, on a dummy parameter.

    Their builders hold the range checks (a positive rate, momentum in [0, 1), ...); running
    them here makes a bad value fail while the config is validated, before any run folder,
    dataset or model exists. Cheap: no data, no model. Their log lines are held back, since
    the real build logs them again.
    """
    logger = logging.getLogger("imgcls")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        regularizers = build_regularizers(cfg)
        params = [nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2))]
        try:
            optimizer = build_optimizer(cfg, params, regularizers)
        except ValueError as error:  # torch's own checks, for what ours do not cover
            raise UserError(f"optimizer={cfg.optimizer.name}: {error}") from error
        mode = cfg.trainer.monitor_mode
        build_scheduler(
            cfg, optimizer, 1, int(cfg.trainer.epochs), str(getattr(mode, "value", mode))
        )
    finally:
        logger.setLevel(level)
