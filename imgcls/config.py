"""Config schemas, composition and validation.

Hydra composes ``conf/train.yaml`` from the config groups; the dataclasses below are stored
in Hydra's ConfigStore so that typed keys (``trainer.epochs``) are checked while composing.
:func:`validate` then checks names and keyword arguments against the registries, so every
mistake fails with one clear line before any work starts. No torch import at module level.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from imgcls.errors import UserError, did_you_mean, unknown_choice
from imgcls.folders import claim_dir, job_dir, reset_unique_dirs, unique_dir  # noqa: F401

# Groups whose options are registry components, in the order a run builds them.
COMPONENT_GROUPS = (
    "model", "dataset", "augment", "scheduler", "regularizer", "optimizer", "logger", "method",
)  # fmt: skip
# Groups that select several options at once (``regularizer=[l2,label_smoothing]``).
LIST_GROUPS = ("regularizer", "logger")
GROUPS = (*COMPONENT_GROUPS, "trainer", "experiment", "recipe")  # what `imgcls list` shows
PRECISIONS = ("auto", "32", "bf16", "16")


class MonitorMode(Enum):
    max = "max"
    min = "min"


class ClipMode(Enum):
    norm = "norm"
    value = "value"


@dataclass
class EmaConfig:
    decay: float = 0.0  # 0 = off; e.g. 0.999


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # 0 = off
    monitor: str = "${..monitor}"
    mode: MonitorMode = "${..monitor_mode}"  # type: ignore[assignment]
    min_delta: float = 0.0


@dataclass
class TrainerConfig:
    epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int = 512
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    log_every: int = 50
    monitor: str = "val_accuracy"
    monitor_mode: MonitorMode = MonitorMode.max
    channels_last: bool = False
    compile: bool = False
    gradient_clip: float = 0.0  # 0 = off
    gradient_clip_mode: ClipMode = ClipMode.norm
    accumulate_batches: int = 1
    ema: EmaConfig = field(default_factory=EmaConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    save_top_k: int = 1
    fast_dev_run: bool = False
    limit_train_batches: int = 0  # 0 = all
    deterministic: bool = False
    strategy: str = "auto"


class LoaderMode(Enum):
    auto = "auto"
    memory = "memory"
    dataloader = "dataloader"


@dataclass
class DataConfig:
    """How batches are made (imgcls.data.pipeline): in device memory or by a DataLoader."""

    loader: LoaderMode = LoaderMode.auto
    memory_mb: int = 4096  # auto: datasets up to this size (uint8) are held in memory


@dataclass
class SweepConfig:
    # A sweep folder to re-run into: finished jobs are skipped (matched by config hash).
    resume: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)


@dataclass
class TrainConfig:
    model: Any = MISSING
    dataset: Any = MISSING
    augment: Any = MISSING
    scheduler: Any = MISSING
    regularizer: Any = field(default_factory=dict)
    optimizer: Any = MISSING
    logger: Any = field(default_factory=dict)
    method: Any = MISSING
    # finetune.from / freeze / backbone_lr_mult (keys in conf/train.yaml; checked by
    # imgcls.transfer.checks, since 'from' cannot be a dataclass field)
    finetune: Any = field(default_factory=dict)
    teacher: Optional[str] = None  # noqa: UP045  (method=distill teacher=<run dir>)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    output_root: str = "outputs"
    # The model family's recipe (conf/recipe/<family>.yaml) that set this run's defaults.
    recipe: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)
    resume: str | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)


def config_dir() -> Path:
    """The config root: ``conf/`` beside the package in a checkout, ``imgcls/conf`` in a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "conf", package / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise UserError(
        f"imgcls config files not found in {package.parent / 'conf'} or {package / 'conf'}"
    )


def group_options(group: str) -> list[str]:
    """The option names of a config group: the YAML file names in ``conf/<group>/``."""
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def option_description(group: str, option: str) -> str:
    """The first comment line of ``conf/<group>/<option>.yaml`` (not the ``@package`` line)."""
    path = config_dir() / group / f"{option}.yaml"
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and "@package" not in text:
            return text.lstrip("#").strip()
        if text and not text.startswith("#"):
            break
    return ""


_registered = False


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore and register imgcls's resolvers (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    from imgcls.augment_schema import AugmentComponents

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    # Every conf/augment preset starts from these (all off): `/augment_components@_here_`.
    ConfigStore.instance().store(name="augment_components", node=AugmentComponents)
    register_resolvers()
    _registered = True


def register_resolvers() -> None:
    """The resolvers conf/train.yaml's run and sweep folders use. Also run when this module is
    imported, so that a job process a launcher starts (joblib, submitit) resolves them."""
    OmegaConf.register_new_resolver("imgcls_unique_dir", unique_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("imgcls_job_dir", _job_dir_resolver, replace=True)


def _job_dir_resolver(name: str, sweep_dir: str, overrides: Any) -> str:
    return job_dir(str(name), str(sweep_dir), [str(o) for o in overrides])


register_resolvers()


def compose(
    overrides: list[str] | tuple[str, ...] = (),
    config_name: str = "train",
    return_hydra: bool = False,
) -> DictConfig:
    """Compose a config like ``imgcls train`` does, turning Hydra's errors into UserError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            return hydra_compose(
                config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra
            )
        except Exception as error:  # Hydra and OmegaConf raise many exception types
            raise translate_compose_error(error, list(overrides)) from error
        finally:
            GlobalHydra.instance().clear()


def translate_compose_error(error: Exception, overrides: list[str]) -> UserError:
    """One clear line for a Hydra composition error: unknown option, unknown key, wrong type."""
    text = " ".join(str(error).split())
    cause = error.__cause__ or error.__context__
    cause_text = " ".join(str(cause).split()) if cause else ""

    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        group, option = missing.group(1).split("/")[-1], missing.group(2)
        return unknown_choice(group, option, group_options(group))
    missing_group = re.search(r"Could not load '([\w/]+)/([^']+)'", text)
    if missing_group:
        group, option = missing_group.group(1).split("/")[-1], missing_group.group(2)
        return unknown_choice(group, option, group_options(group))

    struct = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not append to config. An item is already at '([^']+)'", text
    )
    if struct and ("not in struct" in text + cause_text or "Key '" in text + cause_text):
        return _unknown_key_error(struct.group(1), overrides)

    if "could not be converted" in cause_text or "could not be converted" in text:
        full_key = re.search(r"full_key: ([\w.\[\]]+)", cause_text + " " + text)
        value = re.search(r"Value '([^']*)'", cause_text + " " + text)
        key = full_key.group(1) if full_key else "?"
        expected = re.search(r"converted to (\w+)", cause_text + " " + text)
        kind = expected.group(1).lower() if expected else "another type"
        if "Enum" in kind or kind.endswith("mode"):
            kind = "one of " + ", ".join(m.value for m in MonitorMode)
        return UserError(
            f"{key}={value.group(1) if value else '?'} has the wrong type: expected {kind}"
        )

    if "Ambiguous value for argument" in text:
        arg = re.search(r"argument '([^']+)'", text)
        return UserError(
            f"'{arg.group(1) if arg else text}' is a sweep: add -m (--multirun) to run it"
        )

    if "mismatched input" in text or "no viable alternative" in text or "extraneous input" in text:
        return UserError(f"cannot parse the override(s) {' '.join(overrides)}: {text}")

    if "Invalid value" in cause_text:
        full_key = re.search(r"full_key: ([\w.\[\]]+)", cause_text)
        detail = cause_text.split(" full_key")[0].replace("Invalid value", "invalid value")
        return UserError(f"{full_key.group(1) if full_key else '?'}: {detail}")
    return UserError(text.split(" full_key")[0] or cause_text)


def _unknown_key_error(full_key: str, overrides: list[str]) -> UserError:
    """``optimizer.lrr`` -> unknown key, with a did-you-mean from the keys that exist there.

    The valid keys are those of the component the overrides chose (``model=simplecnn``
    lists simplecnn's keys, not the default model's), and the rejected key is never offered.
    """
    parent_key, _, leaf = full_key.rpartition(".")
    base = [k for k in compose_valid_keys(parent_key, overrides, full_key) if k != leaf]
    hint = did_you_mean(leaf, base).replace("'", f"'{parent_key}." if parent_key else "'", 1) or ";"
    where = f" under {parent_key}" if parent_key else ""
    valid = f" valid keys{where}: {', '.join(base)}" if base else ""
    return UserError(f"unknown config key '{full_key}'{hint}{valid}")


def compose_valid_keys(
    parent_key: str, overrides: list[str] | tuple[str, ...] = (), rejected: str = ""
) -> list[str]:
    """The keys at ``parent_key`` in the config the overrides compose, without the rejected
    one (or, if the rest still fails, with only the group choices such as ``model=lenet``)."""
    kept = [o for o in overrides if _override_key(o) != rejected]
    choices = [o for o in kept if "." not in _override_key(o)]
    for attempt in (kept, choices, []):
        try:
            cfg = compose(attempt)
        except UserError:
            continue
        node = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        return sorted(node.keys()) if isinstance(node, DictConfig) else []
    return []


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


# Keys that say where or how a run is launched or continued, not what it computes.
LAUNCH_KEYS = ("resume", "sweep", "output_root", "hydra")


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


def validate(cfg: DictConfig) -> None:
    """Check a composed config: registry names, keyword arguments, types, finite numbers and
    ranges (the optimizer, schedule and regularizers are built once on a dummy parameter, so
    their own checks run here, before anything else does)."""
    from imgcls.registry import REGISTRIES, load_components

    check_finite(cfg)
    load_components()
    for group in COMPONENT_GROUPS:
        for name, prefix, options in component_options(cfg, group):
            registry = REGISTRIES[group]
            if name not in registry:
                raise unknown_choice(group, name, registry.names())
            registry.check(name, options, prefix)
    _validate_trainer(cfg)
    if OmegaConf.select(cfg, "data.memory_mb", default=0) < 0:
        raise UserError(f"data.memory_mb={cfg.data.memory_mb} is invalid: it must be >= 0")
    from imgcls.transfer.checks import validate_transfer

    validate_transfer(cfg)
    from imgcls.train.build import check_training_values

    check_training_values(cfg)


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


def _validate_trainer(cfg: DictConfig) -> None:
    trainer = cfg.trainer
    for key in ("epochs", "batch_size", "eval_batch_size", "log_every", "accumulate_batches",
                "save_top_k"):  # fmt: skip
        if trainer[key] < 1:
            raise UserError(f"trainer.{key}={trainer[key]} is invalid: it must be at least 1")
    if trainer.num_workers < 0:
        raise UserError(f"trainer.num_workers={trainer.num_workers} is invalid: it must be >= 0")
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
    for key in ("gradient_clip", "limit_train_batches", "early_stopping.patience",
                "early_stopping.min_delta"):  # fmt: skip
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
