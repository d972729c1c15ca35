"""Checking a composed config before anything is built or written.

Every mistake fails here with one clear line: registry names, each component's options and
the trainer's and data options (their dataclasses' rules, naming the full key), transfer
settings, and the optimizer, schedule and regularizers built once on a dummy parameter so
that their own checks run too.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app.build import check_training_values, trainer_options
from imgcls.base.errors import unknown_choice
from imgcls.config.files import COMPONENT_GROUPS
from imgcls.config.schemas import DataConfig
from imgcls.config.values import check_finite, component_options
from imgcls.registry import REGISTRIES, make_options
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
    trainer_options(cfg.trainer)
    make_options(DataConfig, OmegaConf.to_container(cfg.get("data") or {}, resolve=True), "data")
    validate_transfer(cfg)
    check_training_values(cfg)
