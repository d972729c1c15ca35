"""Validation of the ``finetune`` node and the ``method`` options, before any work starts.

:func:`imgcls.app.validation.validate` calls this for every composed config. ``finetune`` has
no options dataclass: its key ``from`` cannot be a dataclass field, so its rules are here.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from imgcls.base.errors import UserError, unknown_choice
from imgcls.registry import DATASETS
from imgcls.transfer.finetune import parse_freeze  # validate has loaded torch already

FINETUNE_KEYS = ("from", "freeze", "backbone_lr_mult")


def validate_transfer(cfg: DictConfig) -> None:
    finetune = OmegaConf.to_container(cfg.get("finetune") or {}, resolve=True)
    for key in finetune:
        if key not in FINETUNE_KEYS:
            raise UserError(
                f"unknown config key 'finetune.{key}'; valid keys: {', '.join(FINETUNE_KEYS)}"
            )
    source = finetune.get("from")
    if source is not None and not isinstance(source, str):
        raise UserError(f"finetune.from={source} is invalid: a run directory, .pt or torchvision")
    _check_freeze(finetune.get("freeze", "none"))
    mult = finetune.get("backbone_lr_mult", 1.0)
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult < 0:
        raise UserError(f"finetune.backbone_lr_mult={mult} is invalid: use a number >= 0")
    method = cfg.get("method")
    if method is not None and method.get("name") == "dann":
        _check_target(OmegaConf.to_container(method.get("target_dataset") or {}, resolve=True))
    # method=distill without a teacher fails when the method is built (still before the run
    # directory exists), so that every conf file validates on its own.


def _check_freeze(value: Any) -> None:
    parse_freeze(value)


def _check_target(options: dict[str, Any]) -> None:
    options = dict(options)
    name = options.pop("name", None)
    if not name:
        raise UserError("method=dann needs method.target_dataset.name (e.g. digits_shifted)")
    if name not in DATASETS:
        raise unknown_choice("method.target_dataset", str(name), DATASETS.names())
    checked = DATASETS.options(str(name), options, "method.target_dataset")
    if getattr(checked, "folds", 0):  # the target domain is used whole, never cut into folds
        raise UserError(
            f"method.target_dataset.folds={checked.folds}: DANN uses the target domain whole; "
            "cut folds of the source with dataset.folds instead"
        )
