"""Reading a composed config: its components, the values a run trains with, NaN checks."""

from __future__ import annotations

import math
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from imgcls.base.errors import UserError, unknown_choice
from imgcls.config.files import LIST_GROUPS, group_options
from imgcls.config.schemas import PRECISIONS

# Keys that say where or how a run is launched or continued (or what it writes beside its
# results: report.html), not what it computes.
LAUNCH_KEYS = ("resume", "sweep", "output_root", "hydra", "report")


def comparable_config(config: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The resolved config as plain containers, without :data:`LAUNCH_KEYS`.

    Two runs with equal comparable configs compute the same thing: ``resume=auto`` and
    ``sweep.resume`` use this to recognise a run they may continue or skip.
    """
    if not isinstance(config, DictConfig):
        config = OmegaConf.create(config)
    plain = OmegaConf.to_container(config, resolve=True, enum_to_str=True)
    for key in LAUNCH_KEYS:
        plain.pop(key, None)
    return plain


def component_options(cfg: DictConfig, group: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The selected component(s) of a group as ``(name, config key prefix, options)``.

    Most groups hold one component (``{name: ..., **options}``); ``regularizer`` holds one
    entry per selected option (``regularizer=[l2,label_smoothing]``).
    """
    node = cfg.get(group)
    if node is None:
        return []
    plain = OmegaConf.to_container(node, resolve=True)
    if group in LIST_GROUPS:
        return [
            (str(value.get("name", key)), f"{group}.{key}", _without_name(value))
            for key, value in plain.items()
            if value.get("name", key) != "none"
        ]
    if "name" not in plain:
        raise UserError(f"{group} has no 'name': choose one of {', '.join(group_options(group))}")
    return [(str(plain["name"]), group, _without_name(plain))]


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The values a run really trains with, after recipes and overrides: summary.json keeps them.

    Recipes (``conf/recipe/``) change defaults per model family, so the config groups a user
    chose do not say on their own which learning rate or how many epochs a run used.
    """
    augment = component_options(cfg, "augment")
    return {
        "recipe": cfg.get("recipe"),
        "model": _named(component_options(cfg, "model")[0]),
        "optimizer": _named(component_options(cfg, "optimizer")[0]),
        "scheduler": _named(component_options(cfg, "scheduler")[0]),
        "regularizers": [_named(entry) for entry in component_options(cfg, "regularizer")],
        "augment": augment[0][0] if augment else None,
        "epochs": int(cfg.trainer.epochs),
        "batch_size": int(cfg.trainer.batch_size),
    }


def _named(entry: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    name, _, options = entry
    return {"name": name, **options}


def _without_name(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "name"}


def check_finite(cfg: DictConfig | dict[str, Any] | list[Any], prefix: str = "") -> None:
    """Refuse NaN and infinity anywhere in a config (``optimizer.lr=inf`` would train to NaN)."""
    node = cfg
    if isinstance(cfg, DictConfig):
        node = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    items = node.items() if isinstance(node, dict) else enumerate(node or [])
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(node, list) else f"{prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{name}={value} is invalid: use a finite number")
        if isinstance(value, (dict, list)):
            check_finite(value, name if isinstance(value, list) else f"{name}.")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: Any) -> str | None:
    """``trainer.compile`` as a torch.compile mode, or None for eager (false/off).

    ``true`` is the ``default`` mode; anything else is a UserError naming the valid values.
    """
    text = str(value).strip().lower()
    if value is False or text in ("false", "off", "none", "no", "0"):
        return None
    if value is True or text in ("true", "on", "yes", "1"):
        return "default"
    if text in COMPILE_MODES:
        return text
    raise unknown_choice("trainer.compile mode", str(value), ("false", "true", *COMPILE_MODES))


def check_trainer(cfg: DictConfig) -> None:
    """The trainer's numbers and names (torch-free; the registries check the components)."""
    trainer = cfg.trainer
    for key in (
        "epochs",
        "batch_size",
        "eval_batch_size",
        "log_every",
        "accumulate_batches",
        "save_top_k",
    ):
        if trainer[key] < 1:
            raise UserError(f"trainer.{key}={trainer[key]} is invalid: it must be at least 1")
    if trainer.num_workers < 0:
        raise UserError(f"trainer.num_workers={trainer.num_workers} is invalid: it must be >= 0")
    compile_mode(trainer.compile)
    if str(trainer.precision) not in PRECISIONS:
        raise unknown_choice("trainer.precision", str(trainer.precision), PRECISIONS)
    device = str(trainer.device)
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise UserError(f"trainer.device='{device}' is invalid: use auto, cpu, cuda, cuda:N or mps")
    strategies = ("auto", "single", "ddp")
    if str(trainer.strategy) not in strategies:
        raise unknown_choice("trainer.strategy", str(trainer.strategy), strategies)
    monitors = ("val_accuracy", "val_loss")
    if trainer.monitor not in monitors:
        raise unknown_choice("trainer.monitor metric", trainer.monitor, monitors)
    for key in (
        "gradient_clip",
        "limit_train_batches",
        "early_stopping.patience",
        "early_stopping.min_delta",
    ):
        if OmegaConf.select(trainer, key) < 0:
            raise UserError(f"trainer.{key}={OmegaConf.select(trainer, key)} is invalid: use >= 0")
    if not 0 <= trainer.ema.decay < 1:
        raise UserError(f"trainer.ema.decay={trainer.ema.decay} is invalid: use [0, 1), 0 = off")
    stopping = trainer.early_stopping.monitor
    if stopping not in (*monitors, "train_loss", "train_accuracy"):
        raise unknown_choice(
            "trainer.early_stopping.monitor metric",
            stopping,
            (*monitors, "train_loss", "train_accuracy"),
        )
