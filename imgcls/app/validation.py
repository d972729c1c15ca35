"""Checking a composed config before anything is built or written.

Composition already refused unknown keys and wrong types (every component's options
dataclass is its schema). Here every mistake left fails with one clear line: the components'
own rules (their options' ``__post_init__``), the trainer's, the transfer settings, and the
rules that span components (a schedule's floor against the optimizer's rate).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.base.errors import UserError
from imgcls.config.files import COMPONENT_GROUPS
from imgcls.config.options.optimizers import OptimizerOptions
from imgcls.config.values import check_finite, check_trainer, component_options
from imgcls.registry import REGISTRIES
from imgcls.train.lookahead import check as check_lookahead
from imgcls.train.tta import check_views
from imgcls.transfer.checks import validate_transfer


def validate(cfg: DictConfig) -> None:
    """Check a composed config; raise :class:`UserError` naming the first bad value."""
    check_finite(cfg)
    chosen = {
        group: [
            REGISTRIES[group].options(name, options, prefix)
            for name, prefix, options in component_options(cfg, group)
        ]
        for group in COMPONENT_GROUPS
    }
    check_trainer(cfg)
    lookahead = cfg.trainer.lookahead
    check_lookahead(lookahead.every, lookahead.decay, lookahead.power)
    check_views(cfg.trainer.test_tta)
    if OmegaConf.select(cfg, "data.memory_mb", default=0) < 0:
        raise UserError(f"data.memory_mb={cfg.data.memory_mb} is invalid: it must be >= 0")
    validate_transfer(cfg)
    check_schedule_floor(chosen["scheduler"][0], chosen["optimizer"][0])


def check_schedule_floor(schedule: object, optimizer: OptimizerOptions) -> None:
    """A schedule's ``lr_min`` is at most the optimizer's rate (it is the rate's floor)."""
    lr_min = getattr(schedule, "lr_min", 0.0)
    if not 0 <= lr_min <= optimizer.lr:
        raise UserError(
            f"scheduler.lr_min={lr_min} is invalid: it must be in [0, optimizer.lr={optimizer.lr}]"
        )
