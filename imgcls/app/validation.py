"""Checking a composed config before anything is built or written.

Every mistake fails here with one clear line: registry names, keyword arguments and their
types and ranges, the trainer's numbers, transfer settings, and the optimizer, schedule and
regularizers built once on a dummy parameter so that their own checks run too.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app.build import check_training_values
from imgcls.base.errors import UserError, unknown_choice
from imgcls.config.files import COMPONENT_GROUPS
from imgcls.config.values import check_finite, check_trainer, component_options
from imgcls.registry import REGISTRIES
from imgcls.train.lookahead import check as check_lookahead
from imgcls.train.tta import check_views
from imgcls.transfer.checks import validate_transfer


def validate(cfg: DictConfig) -> None:
    """Check a composed config; raise :class:`UserError` naming the first bad value."""
    check_finite(cfg)
    for group in COMPONENT_GROUPS:
        for name, prefix, options in component_options(cfg, group):
            registry = REGISTRIES[group]
            if name not in registry:
                raise unknown_choice(group, name, registry.names())
            registry.options(name, options, prefix)
    check_trainer(cfg)
    lookahead = cfg.trainer.lookahead
    check_lookahead(lookahead.every, lookahead.decay, lookahead.power)
    check_views(cfg.trainer.test_tta)
    if OmegaConf.select(cfg, "data.memory_mb", default=0) < 0:
        raise UserError(f"data.memory_mb={cfg.data.memory_mb} is invalid: it must be >= 0")
    validate_transfer(cfg)
    check_training_values(cfg)
