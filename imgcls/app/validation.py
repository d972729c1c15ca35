"""Checking a composed config before anything is built or written.

Composition already refused unknown keys and wrong types (every component's options
dataclass is its schema). Here every mistake left fails with one clear line: the components'
own rules (their options' ``__post_init__``), the trainer's, the transfer settings, and the
rules that span components: a schedule's floor against the optimizer's rate here, and, once
the dataset and the processes are known, the batch against the training images and the DDP
processes (called from :mod:`imgcls.app.build`).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.base.errors import OptionError, UserError
from imgcls.config.files import COMPONENT_GROUPS
from imgcls.config.options.base import SCHEMAS, seed
from imgcls.config.options.optimizers import OptimizerOptions
from imgcls.config.options.trainer import TrainerOptions
from imgcls.config.schemas import DataConfig
from imgcls.config.values import check_finite, component_options, resolved
from imgcls.registry import MODELS, REGISTRIES, make_options
from imgcls.transfer.checks import validate_transfer


def validate(cfg: DictConfig) -> None:
    """Check a composed config; raise :class:`UserError` naming the first bad value."""
    plain = resolved(cfg)  # every ${...} resolves, or one line names the key
    check_seed(plain.get("seed", 0))
    check_finite(plain)
    check_model_name(cfg)
    chosen = {
        group: [
            REGISTRIES[group].options(name, options, prefix)
            for name, prefix, options in component_options(cfg, group)
        ]
        for group in COMPONENT_GROUPS
    }
    trainer_options(cfg.trainer)
    make_options(DataConfig, OmegaConf.to_container(cfg.get("data") or {}, resolve=True), "data")
    validate_transfer(cfg)
    check_schedule_floor(chosen["scheduler"][0], chosen["optimizer"][0])


def check_model_name(cfg: DictConfig) -> None:
    """``model=timm model.name=convnext_atto``: the architecture goes in ``model.variant``;
    the registry would only say that no model is called so."""
    model = cfg.get("model")
    if model is None or "variant" not in model or str(model.get("name")) in MODELS:
        return
    schema_type = OmegaConf.get_type(model)
    family = next((n for (g, n), c in SCHEMAS.items() if g == "model" and c is schema_type), None)
    if family is not None:
        raise UserError(
            f"model.name={model.name} is not a model: with model={family} the architecture is "
            f"chosen with model.variant={model.name}"
        )


def check_seed(value: object) -> None:
    """The run's ``seed`` is an integer in [0, 2**32 - 1] (what NumPy and Optuna accept)."""
    try:
        seed("seed", value)  # an int: the schema refused anything else while composing
    except OptionError as error:
        raise UserError(str(error)) from None


def check_schedule_floor(schedule: object, optimizer: OptimizerOptions) -> None:
    """A schedule's ``lr_min`` is at most the optimizer's rate (it is the rate's floor)."""
    lr_min = getattr(schedule, "lr_min", 0.0)
    if not 0 <= lr_min <= optimizer.lr:
        raise UserError(
            f"scheduler.lr_min={lr_min} is invalid: it must be in [0, optimizer.lr={optimizer.lr}]"
        )


def trainer_options(trainer: DictConfig | TrainerOptions) -> TrainerOptions:
    """The typed, checked trainer options of ``cfg.trainer``; a bad value names its full key
    (``trainer.early_stopping.patience=-1 is invalid: ...``)."""
    if isinstance(trainer, TrainerOptions):
        return trainer
    return make_options(TrainerOptions, OmegaConf.to_container(trainer, resolve=True), "trainer")


def check_batch_fits(trainer: TrainerOptions, train_images: int, dataset: str) -> None:
    """A batch is at most the training set (known once the dataset is loaded)."""
    if trainer.batch_size > train_images:
        raise UserError(
            f"trainer.batch_size={trainer.batch_size} is larger than the {train_images} "
            f"training images of {dataset}; use at most {train_images}"
        )


def check_global_batch(trainer: TrainerOptions, world_size: int) -> None:
    """Under DDP ``trainer.batch_size`` is the global batch: the processes share it evenly."""
    if trainer.batch_size % world_size:
        raise UserError(
            f"trainer.batch_size={trainer.batch_size} is the global batch: it must be "
            f"divisible by the {world_size} processes"
        )
