"""Optimizers, registered in OPTIMIZERS; each builder takes the parameters to optimise.

With ``decay_norm_and_bias=false`` (the default) weight decay applies only to weight
matrices and convolution kernels: parameters with at most one dimension (biases, batch-norm
and layer-norm scales and shifts) go into a second parameter group without decay, since
decaying them only fights the normalisation.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from imgcls.base.errors import UserError
from imgcls.registry import OPTIMIZERS


def _check(
    lr: float,
    weight_decay: float,
    momentum: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """The ranges every optimizer shares; :func:`imgcls.app.validation.validate` runs them too."""
    if not lr > 0:
        raise UserError(f"optimizer.lr={lr} is invalid: the learning rate must be positive")
    if not weight_decay >= 0:
        raise UserError(f"optimizer.weight_decay={weight_decay} is invalid: it must be >= 0")
    if not 0 <= momentum < 1:
        raise UserError(f"optimizer.momentum={momentum} is invalid: use [0, 1)")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise UserError(f"optimizer.betas={list(betas)} is invalid: use two values in [0, 1)")
    if not eps > 0:
        raise UserError(f"optimizer.eps={eps} is invalid: it must be positive")


def param_groups(
    params: Iterable[torch.nn.Parameter], weight_decay: float, decay_norm_and_bias: bool
) -> list[dict[str, Any]]:
    """One group with ``weight_decay``; plus one without it for 1-d parameters if asked."""
    params = [p for p in params if p.requires_grad]
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def fused_if_cuda(optimizer: type[torch.optim.Optimizer], groups: list[dict[str, Any]]) -> dict:
    """``fused=True`` when every parameter is on a CUDA device and the optimizer has a fused
    kernel (one launch per step for all parameters); otherwise PyTorch's default, which is
    already the multi-tensor ``foreach`` path on CUDA."""
    params = [p for group in groups for p in group["params"]]
    on_cuda = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    if on_cuda and "fused" in inspect.signature(optimizer.__init__).parameters:
        return {"fused": True}
    return {}


@OPTIMIZERS.register("sgd")
def sgd(
    params: Iterable,
    lr: float = 0.05,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay, momentum=momentum)
    if nesterov and momentum <= 0:
        raise UserError("optimizer.nesterov=true needs optimizer.momentum > 0")
    groups = param_groups(params, weight_decay, decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.SGD, groups)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, **fast)


@OPTIMIZERS.register("adam")
def adam(
    params: Iterable,
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay, betas=betas)
    groups = param_groups(params, weight_decay, decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.Adam, groups)
    return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), **fast)


@OPTIMIZERS.register("adamw")
def adamw(
    params: Iterable,
    lr: float = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.05,
    decay_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay, betas=betas)
    groups = param_groups(params, weight_decay, decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.AdamW, groups)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), **fast)


@OPTIMIZERS.register("rmsprop")
def rmsprop(
    params: Iterable,
    lr: float = 1e-3,
    alpha: float = 0.99,
    momentum: float = 0.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    _check(lr, weight_decay, momentum=momentum, eps=eps)
    if not 0 < alpha < 1:
        raise UserError(f"optimizer.alpha={alpha} is invalid: use (0, 1)")
    groups = param_groups(params, weight_decay, decay_norm_and_bias)
    return torch.optim.RMSprop(groups, lr=lr, alpha=alpha, momentum=momentum, eps=eps)
