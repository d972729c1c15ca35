"""Choose the data path for a run and build its train/val/test loaders.

``data.loader=memory`` holds every split as one uint8 tensor on the training device
(:class:`DeviceLoader`); ``dataloader`` reads and augments per sample in DataLoader workers
(:class:`SampleLoader`); ``auto`` keeps the fast path unless a dataset read from files is
larger than ``data.memory_mb`` (uint8 bytes at the dataset's image size).
``data.sampler=balanced`` gives the train loader sampling weights (:mod:`imgcls.data.sampling`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from imgcls.base.errors import UserError, unknown_choice
from imgcls.data.augment import Augment
from imgcls.data.loader import DeviceLoader
from imgcls.data.sample_loader import SampleLoader
from imgcls.data.sampling import BALANCED, SAMPLERS, describe, sample_weights
from imgcls.data.splits import DataSplits

logger = logging.getLogger("imgcls")
MODES = ("auto", "memory", "dataloader")


@dataclass
class Loaders:
    data: DataSplits  # decoded into memory when the fast path was chosen
    mode: str
    train: Any
    val: Any
    test: Any


def choose_mode(mode: str, data: DataSplits, memory_mb: int) -> str:
    """``memory`` or ``dataloader`` for ``data.loader=mode``."""
    if mode not in MODES:
        raise unknown_choice("data.loader", mode, MODES)
    if memory_mb < 0:
        raise UserError(f"data.memory_mb={memory_mb} is invalid: it must be >= 0")
    if mode != "auto":
        return mode
    if data.in_memory or data.nbytes <= memory_mb * 2**20:
        return "memory"
    return "dataloader"


def _option(options: Any, key: str, default: str) -> str:
    value = options.get(key, default)
    return str(getattr(value, "value", value))


def train_weights(data: DataSplits, options: Any) -> torch.Tensor | None:
    """The train split's sampling weights for ``data.sampler=balanced`` (None for ``none``),
    announced in one log line."""
    sampler = _option(options, "sampler", "none")
    if sampler not in SAMPLERS:
        raise unknown_choice("data.sampler", sampler, SAMPLERS)
    if sampler != BALANCED:
        return None
    labels = data.train.labels
    threshold = float(options.get("repeat_threshold", 0.1))
    logger.info(describe(labels, data.num_classes, threshold))
    return sample_weights(labels, data.num_classes, threshold)


def make_loaders(
    data: DataSplits,
    options: Any,
    *,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device,
    augment: Augment | None,
    generator: torch.Generator,
    num_workers: int = 0,
    channels_last: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> Loaders:
    """Train (shuffled or drawn by ``data.sampler``, augmented), validation and test loaders
    on the chosen path."""
    mode = choose_mode(
        _option(options, "loader", "auto"), data, int(options.get("memory_mb", 4096))
    )
    weights = train_weights(data, options)
    common = {"mean": data.mean, "std": data.std, "channels_last": channels_last}
    if mode == "memory":
        data = data.materialize()
        train, val, test = (data.train.to(device), data.val.to(device), data.test.to(device))
        return Loaders(
            data,
            mode,
            DeviceLoader(
                train,
                batch_size,
                shuffle=True,
                augment=augment,
                generator=generator,
                num_classes=data.num_classes,
                shard=shard,
                weights=weights,
                **common,
            ),
            DeviceLoader(val, eval_batch_size, **common),
            DeviceLoader(test, eval_batch_size, **common),
        )
    if shard[1] > 1:
        raise UserError(
            "trainer.strategy=ddp needs the in-memory data path: set data.loader=memory "
            "(the DataLoader path is not sharded across processes yet)"
        )
    logger.info(
        f"data: DataLoader with {num_workers} workers and per-sample transforms "
        f"({data.nbytes / 2**20:.0f} MB of images)"
    )
    return Loaders(
        data,
        mode,
        SampleLoader(
            data.train,
            batch_size,
            device=device,
            shuffle=True,
            augment=augment,
            generator=generator,
            num_workers=num_workers,
            num_classes=data.num_classes,
            weights=weights,
            **common,
        ),
        SampleLoader(data.val, eval_batch_size, device=device, num_workers=num_workers, **common),
        SampleLoader(data.test, eval_batch_size, device=device, num_workers=num_workers, **common),
    )
