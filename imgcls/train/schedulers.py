"""Learning-rate schedules, stepped every optimizer step so they are smooth.

Each schedule is a factor f(t) of the base rate, t the training progress in epochs
(fractional within an epoch, 0-based), so the rate at every epoch boundary is exactly the
textbook formula. They run as torch's LambdaLR with ``step / steps_per_epoch`` as t.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from imgcls.errors import UserError
from imgcls.registry import SCHEDULERS

Factor = Callable[[float], float]


def _stepwise(optimizer: torch.optim.Optimizer, steps_per_epoch: int, factor: Factor):
    def lr_lambda(step: int) -> float:
        return factor(step / steps_per_epoch)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def _base_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"]))


@SCHEDULERS.register("constant", "the learning rate stays at optimizer.lr")
def constant(optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int):
    return _stepwise(optimizer, steps_per_epoch, lambda t: 1.0)


@SCHEDULERS.register("step", "lr0 * gamma^floor(t / step_size)")
def step(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    step_size: int = 10,
    gamma: float = 0.1,
):
    if step_size < 1:
        raise UserError(f"scheduler.step_size={step_size} is invalid: it must be at least 1")
    if not gamma > 0:
        raise UserError(f"scheduler.gamma={gamma} is invalid: it must be positive")
    return _stepwise(
        optimizer, steps_per_epoch, lambda t: gamma ** math.floor(t / step_size + 1e-9)
    )


@SCHEDULERS.register("cosine", "lr_min + (lr0 - lr_min)(1 + cos(pi t / T)) / 2")
def cosine(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, lr_min: float = 0.0
):
    lr0 = _base_lr(optimizer)
    if not 0 <= lr_min <= lr0:
        raise UserError(
            f"scheduler.lr_min={lr_min} is invalid: it must be in [0, optimizer.lr={lr0}]"
        )

    def factor(t: float) -> float:
        progress = min(t / epochs, 1.0)
        return (lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * progress))) / lr0

    return _stepwise(optimizer, steps_per_epoch, factor)


@SCHEDULERS.register("exponential", "lr0 * gamma^t")
def exponential(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, gamma: float = 0.9
):
    if not 0 < gamma <= 1:
        raise UserError(f"scheduler.gamma={gamma} is invalid: it must be in (0, 1]")
    return _stepwise(optimizer, steps_per_epoch, lambda t: gamma**t)
