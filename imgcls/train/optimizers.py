"""Optimizers, registered in OPTIMIZERS; each builder takes the parameters to optimise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from imgcls.errors import UserError
from imgcls.registry import OPTIMIZERS


def _check(lr: float, weight_decay: float) -> None:
    if not lr > 0:
        raise UserError(f"optimizer.lr={lr} is invalid: the learning rate must be positive")
    if weight_decay < 0:
        raise UserError(f"optimizer.weight_decay={weight_decay} is invalid: it must be >= 0")


@OPTIMIZERS.register("sgd", "stochastic gradient descent with (Nesterov) momentum")
def sgd(
    params: Iterable,
    lr: float = 0.05,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay)
    if nesterov and momentum <= 0:
        raise UserError("optimizer.nesterov=true needs optimizer.momentum > 0")
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


@OPTIMIZERS.register("adam", "Adam with coupled L2 weight decay")
def adam(
    params: Iterable,
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


@OPTIMIZERS.register("adamw", "AdamW with decoupled weight decay")
def adamw(
    params: Iterable,
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.05,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
