"""Config -> objects: every component is built from its registry by name.

:func:`build_training` assembles a whole run (data, model, loaders, optimizer, schedule,
method) in dependency order; the smaller builders serve validation, preview and tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app.validation import check_batch_fits, check_global_batch, trainer_options
from imgcls.base import distributed
from imgcls.base.distributed import DistributedContext
from imgcls.base.errors import OptionError, UserError
from imgcls.base.progress import is_terminal
from imgcls.config.options.trainer import TrainerOptions, resolve_monitor
from imgcls.config.recipe_groups import recipe_hint
from imgcls.config.values import component_options
from imgcls.data import cache as decode_cache
from imgcls.data.augment import Augment
from imgcls.data.folds import apply_folds
from imgcls.data.pipeline import Loaders, make_loaders
from imgcls.data.splits import DataSplits
from imgcls.data.targets import class_counts
from imgcls.registry import (
    AUGMENTS,
    DATASETS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    REGULARIZERS,
    SCHEDULERS,
)
from imgcls.train.data_init import initialize_from_data
from imgcls.train.devices import resolve_precision, select_device
from imgcls.train.layer_decay import apply_layer_decay
from imgcls.train.losses import Loss
from imgcls.train.lr_groups import apply_lr_multipliers
from imgcls.train.regularizers import Regularizer
from imgcls.train.runtime import Runtime
from imgcls.transfer import setup as transfer
from imgcls.transfer.finetune import FineTune
from imgcls.transfer.methods import Method


def _one(cfg: DictConfig, group: str) -> tuple[str, str, dict[str, Any]]:
    return component_options(cfg, group)[0]


def build_dataset(cfg: DictConfig) -> DataSplits:
    """The dataset the config chooses, split into train, validation and test; image files it
    holds are decoded through the decode cache as ``data.cache`` / ``data.cache_dir`` say.
    With ``dataset.folds=K`` the validation split is fold ``dataset.fold`` of the training
    pool, whichever the dataset (:func:`imgcls.data.folds.apply_folds`)."""
    name, prefix, options = _one(cfg, "dataset")
    made = DATASETS.options(name, options, prefix)
    with decode_cache.using(decode_cache.settings_from(cfg.get("data") or {})):
        data = DATASETS.build(name, made, prefix=prefix)
        if made.folds:
            stats = getattr(made, "stats_images", None)
            data = apply_folds(data, made.folds, made.fold, made.split_seed, stats)
    return data


def build_model(cfg: DictConfig, data: DataSplits) -> nn.Module:
    """The model the config chooses, sized for the dataset's classes, channels and images."""
    name, prefix, options = _one(cfg, "model")
    return MODELS.build(
        name,
        options,
        prefix=prefix,
        num_classes=data.num_classes,
        in_channels=data.channels,
        image_size=data.image_size,
    )


def pretrained_normalisation(data: DataSplits, model: nn.Module) -> DataSplits:
    """``data`` normalised as the model's pretrained weights were, when they say how.

    A timm model with local weights keeps its pretrained configuration's mean and std
    (:class:`imgcls.models.timm_weights.PretrainedInput`); fine-tuning feeds it images
    normalised the same way. For another channel count the dataset's own statistics stay.
    """
    spec = getattr(model, "pretrained_input", None)
    if spec is None:
        return data
    if len(spec.mean) != data.channels:
        logging.getLogger("imgcls").info(
            f"the pretrained normalisation is for {len(spec.mean)} channels and the data has "
            f"{data.channels}: the dataset's own mean and std are used"
        )
        return data
    c, h, w = spec.input_size
    if (h, w) != tuple(data.image_size):
        logging.getLogger("imgcls").info(
            f"the weights were trained on {h}x{w} images and the data gives "
            f"{data.image_size[0]}x{data.image_size[1]} (resize with dataset.image_size where the "
            "dataset takes it)"
        )
    return replace(data, mean=tuple(spec.mean), std=tuple(spec.std))


def build_augment(cfg: DictConfig) -> Augment:
    """The augmentation pipeline the config chooses."""
    name, prefix, options = _one(cfg, "augment")
    return AUGMENTS.build(name, options, prefix=prefix)


def build_loss(cfg: DictConfig, data: DataSplits, label_smoothing: float = 0.0) -> Loss:
    """The training loss the config chooses, for the dataset's task and classes (its class
    weights come from the training split's labels)."""
    name, prefix, options = _one(cfg, "loss")
    counts = class_counts(data.train.labels, data.num_classes).tolist()
    return LOSSES.build(
        name,
        options,
        prefix=prefix,
        task=data.task,
        counts=counts,
        classes=data.classes,
        label_smoothing=label_smoothing,
    )


def build_regularizers(cfg: DictConfig) -> list[Regularizer]:
    """Every regularizer the config selects (several may be active at once)."""
    return [
        REGULARIZERS.build(name, options, prefix=prefix)
        for name, prefix, options in component_options(cfg, "regularizer")
    ]


def build_optimizer(
    cfg: DictConfig, params: Iterable[nn.Parameter], regularizers: list[Regularizer]
) -> torch.optim.Optimizer:
    """The optimizer over ``params``; ``regularizer=l2`` sets its weight decay."""
    name, prefix, options = _one(cfg, "optimizer")
    decays = [r.weight_decay for r in regularizers if r.weight_decay is not None]
    if decays:  # regularizer=l2 sets the weight decay, whatever the optimizer file says
        options["weight_decay"] = decays[-1]
    try:
        return OPTIMIZERS.build(name, options, prefix=prefix, params=params)
    except ValueError as error:  # torch's own checks, for what the options do not cover
        raise UserError(f"optimizer={name}: {error}") from error


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


@dataclass
class Training:
    """Everything one run trains with, built from its config before any file is written."""

    data: DataSplits
    model: nn.Module
    loaders: Loaders
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    regularizers: list[Regularizer]
    loss: Loss
    method: Method
    tune: FineTune
    trainer: TrainerOptions
    runtime: Runtime
    place: Placement
    seconds: dict[str, float]  # data (dataset and loaders) and model (the rest of the build)
    init_seconds: float | None = None  # the model's initialisation from data (whitening)

    @property
    def label_smoothing(self) -> float:
        """The loss's label smoothing: the sum of what the regularizers ask for."""
        return sum(r.label_smoothing for r in self.regularizers)


@dataclass
class Placement:
    """Where a run computes: the device, its precision, and the DDP process group."""

    device: torch.device
    precision: str
    processes: DistributedContext


def place(trainer: DictConfig | TrainerOptions) -> Placement:
    """The device and precision for ``trainer``; under torchrun with DDP, this process's GPU."""
    trainer = trainer_options(trainer)
    device = select_device(trainer.device)
    processes = distributed.setup(trainer.strategy.name, device.type)
    if processes.enabled:
        if device.type == "cuda":
            device = torch.device("cuda", processes.local_rank)
        check_global_batch(trainer, processes.world_size)
        if not processes.is_main:
            logging.getLogger("imgcls").setLevel(logging.WARNING)  # rank 0 alone reports
    return Placement(device, resolve_precision(trainer.precision.name, device), processes)


def _label(cfg: DictConfig) -> str:
    """``model=torchvision model.variant=mobilenet_v3_small``, as the user chose it."""
    variant = cfg.model.get("variant")
    return f"model={cfg.model.name}" + (f" model.variant={variant}" if variant else "")


def build_training(cfg: DictConfig, place: Placement) -> Training:
    """Data, model, loaders, optimizer, schedule and method for ``cfg``, in dependency order."""
    trainer, device = trainer_options(cfg.trainer), place.device
    started = time.perf_counter()
    data = build_dataset(cfg)
    check_batch_fits(trainer, len(data.train), data.name)
    data_seconds = time.perf_counter() - started
    model = build_model(cfg, data).to(device)
    data = pretrained_normalisation(data, model)  # a timm model's weights bring their own
    init_seconds = initialize_from_data(model, data, device)  # airbench's whitening; timed
    tune = transfer.prepare_model(cfg, model, data)  # finetune.from / freeze, before L2-SP
    regularizers = build_regularizers(cfg)
    for regularizer in regularizers:
        regularizer.configure(model, cfg.model.name)
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model.parameters(), regularizers)
    apply_lr_multipliers(optimizer, model)  # a model's own rates (airbench's norm biases)
    decay = apply_layer_decay(optimizer, model, cfg.optimizer.get("layer_decay"), _label(cfg))
    if decay:  # the multipliers per layer, in train.log with the fine-tuning lines
        tune.note(decay)
    hint = recipe_hint(cfg.model.name, cfg.model.get("variant"), cfg.get("recipe"))
    if hint:  # a ViT with the convnet recipe: say which recipe fits it
        tune.note(hint, logging.WARNING)
    loaders_started = time.perf_counter()
    loaders = _loaders(cfg, data, place)
    data_seconds += time.perf_counter() - loaders_started
    runtime = Runtime(
        precision=place.precision,
        show_progress=is_terminal(),
        distributed=place.processes.enabled,
        is_main=place.processes.is_main,
    )
    loss = build_loss(cfg, data, sum(r.label_smoothing for r in regularizers)).to(device)
    method = _method(cfg, model, loaders, trainer, regularizers, place)
    check_task(cfg, trainer, data, method)
    transfer.configure_optimizer(optimizer, model, tune, method)
    scheduler = build_scheduler(
        cfg,
        optimizer,
        trainer.optimizer_steps(len(loaders.train)),
        trainer.run_epochs,
        trainer.monitor_mode.value,
    )
    seconds = {"data": data_seconds, "model": time.perf_counter() - started - data_seconds}
    if init_seconds is not None:  # whitening is timed apart from the rest of the model's build
        seconds["model"] -= init_seconds
        seconds["init_from_data"] = init_seconds
    return Training(
        loaders.data,
        model,
        loaders,
        optimizer,
        scheduler,
        regularizers,
        loss,
        method,
        tune,
        trainer,
        runtime,
        place,
        seconds,
        init_seconds,
    )


def _loaders(cfg: DictConfig, data: DataSplits, place: Placement) -> Loaders:
    trainer = cfg.trainer
    generator = torch.Generator(device=place.device)
    generator.manual_seed(int(cfg.seed))
    return make_loaders(
        data,
        cfg.get("data") or {},
        batch_size=trainer.batch_size,
        eval_batch_size=trainer.eval_batch_size,
        device=place.device,
        augment=build_augment(cfg),
        generator=generator,
        num_workers=trainer.num_workers,
        channels_last=trainer.channels_last,
        shard=(place.processes.rank, place.processes.world_size),
    )


def check_task(cfg: DictConfig, trainer: TrainerOptions, data: DataSplits, method: Method) -> None:
    """What the data's task rules out: a monitor it has no metric for, and a method with a
    single-label loss of its own (DANN, distillation) on several labels per image or with a
    loss other than plain cross-entropy."""
    try:
        resolve_monitor(trainer.monitor.value, data.task)
        stopping = trainer.early_stopping
        resolve_monitor(stopping.monitor.value, data.task, "trainer.early_stopping.monitor")
    except OptionError as error:
        raise UserError(str(error)) from None
    if method.step_loss is None:
        return
    if data.multilabel:
        raise UserError(
            f"method={method.name} trains one label per image, and dataset '{data.name}' "
            "gives several: use method=standard"
        )
    name, _, options = _one(cfg, "loss")
    if name != "cross_entropy" or options.get("class_weights") is not None:
        raise UserError(
            f"method={method.name} trains with its own cross-entropy: use loss=cross_entropy "
            "without class_weights (or method=standard)"
        )


def _method(
    cfg: DictConfig,
    model: nn.Module,
    loaders: Loaders,
    trainer: TrainerOptions,
    regularizers: list[Regularizer],
    place: Placement,
) -> Method:
    return transfer.build_method(
        cfg,
        model=model,
        data=loaders.data,
        device=place.device,
        epochs=trainer.run_epochs,
        steps_per_epoch=trainer.train_batches(len(loaders.train)),
        batch_size=trainer.batch_size,
        eval_batch_size=trainer.eval_batch_size,
        label_smoothing=sum(r.label_smoothing for r in regularizers),
        seed=int(cfg.seed),
        precision=place.precision,
    )
