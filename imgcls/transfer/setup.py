"""What the train job calls: fine-tune the built model, then build the training method."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from imgcls.config.values import component_options
from imgcls.data.splits import DataSplits
from imgcls.registry import METHODS
from imgcls.transfer.finetune import FineTune, scale_backbone_lr, setup
from imgcls.transfer.methods import Method


def prepare_model(cfg: DictConfig, model: nn.Module, data: DataSplits) -> FineTune:
    """Load ``finetune.from`` into ``model`` and freeze what ``finetune.freeze`` asks."""
    options = OmegaConf.to_container(cfg.get("finetune") or {}, resolve=True)
    return setup(options, model, data, cfg.model)


def configure_optimizer(
    optimizer: torch.optim.Optimizer, model: nn.Module, tune: FineTune, method: Method
) -> None:
    """The backbone's learning-rate multiplier, and the method's own modules as a group."""
    scale_backbone_lr(optimizer, model, tune.backbone_lr_mult)
    method.attach(optimizer)


def build_method(cfg: DictConfig, **runtime: Any) -> Method:
    found = component_options(cfg, "method")
    if not found:
        return Method()
    name, prefix, options = found[0]
    return METHODS.build(name, options, prefix=prefix, **runtime)
