"""Reading a composed config: its components, the values a run trains with, NaN checks."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from imgcls.base.errors import UserError
from imgcls.config.files import LIST_GROUPS, group_options
from imgcls.config.hydra_errors import interpolation_error

# The largest integer a config may hold: torch and NumPy keep integers in 64 bits.
INT64_MAX = 2**63 - 1

# Keys that say where or how a run is launched or continued (or what it writes beside its
# results: report.html), not what it computes.
LAUNCH_KEYS = ("resume", "sweep", "output_root", "hydra", "report")


def is_launch_key(key: str) -> bool:
    """Whether an override's ``key`` (``output_root``, ``sweep.resume``) is one of
    :data:`LAUNCH_KEYS`: how a run was launched, not what it computed."""
    return key.lstrip("+~").split(".", 1)[0] in LAUNCH_KEYS


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
        "sampler": _sampler(cfg),
    }


def _sampler(cfg: DictConfig) -> str:
    """``data.sampler`` as text (a run composed without the data node samples by ``none``)."""
    value = (cfg.get("data") or {}).get("sampler", "none")
    return str(getattr(value, "value", value))


def _named(entry: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    name, _, options = entry
    return {"name": name, **options}


WEIGHT_SOURCES = ("pretrained", "weights")
"""Model keys that load weights from elsewhere (ImageNet files, a timm weights file)."""


def without_weight_sources(options: dict[str, Any]) -> dict[str, Any]:
    """A model's options to rebuild it from a checkpoint, which holds the weights: no other
    weights are looked for (a moved or missing weights file must not break ``eval``)."""
    return {k: v for k, v in options.items() if k not in WEIGHT_SOURCES}


def _without_name(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "name"}


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers, every ``${...}`` resolved and no ``???`` left; a value
    that does not resolve is one line naming its key (:func:`interpolation_error`)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=True)
    except (InterpolationResolutionError, MissingMandatoryValue) as error:
        raise interpolation_error(error, cfg) from None


def check_finite(cfg: DictConfig | dict[str, Any] | list[Any], prefix: str = "") -> None:
    """Refuse NaN and infinity anywhere in a config (``optimizer.lr=inf`` would train to NaN),
    and integers beyond 64 bits, which torch and NumPy cannot hold."""
    node = resolved(cfg) if isinstance(cfg, DictConfig) else cfg
    items = node.items() if isinstance(node, dict) else enumerate(node or [])
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(node, list) else f"{prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{name}={value} is invalid: use a finite number")
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise UserError(
                f"{name}={value} is too large: use an integer in [{-INT64_MAX - 1}, {INT64_MAX}]"
            )
        if isinstance(value, (dict, list)):
            check_finite(value, name if isinstance(value, list) else f"{name}.")
