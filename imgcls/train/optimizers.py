"""Optimizers, registered in OPTIMIZERS; each builder takes the parameters to optimise.

With ``decay_norm_and_bias=false`` (the default) weight decay applies only to weight
matrices and convolution kernels: parameters with at most one dimension (biases, batch-norm
and layer-norm scales and shifts) go into a second parameter group without decay, since
decaying them only fights the normalisation.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from imgcls.config.options.optimizers import (
    AdamOptions,
    AdamWOptions,
    NAdamOptions,
    RmspropOptions,
    SgdOptions,
)
from imgcls.registry import OPTIMIZERS


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


@OPTIMIZERS.register("sgd", SgdOptions)
def sgd(options: SgdOptions, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum."""
    groups = param_groups(params, options.weight_decay, options.decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.SGD, groups)
    return torch.optim.SGD(
        groups, lr=options.lr, momentum=options.momentum, nesterov=options.nesterov, **fast
    )


@OPTIMIZERS.register("adam", AdamOptions)
def adam(options: AdamOptions, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam."""
    groups = param_groups(params, options.weight_decay, options.decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.Adam, groups)
    return torch.optim.Adam(groups, lr=options.lr, betas=tuple(options.betas), **fast)


@OPTIMIZERS.register("adamw", AdamWOptions)
def adamw(options: AdamWOptions, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW."""
    groups = param_groups(params, options.weight_decay, options.decay_norm_and_bias)
    fast = fused_if_cuda(torch.optim.AdamW, groups)
    return torch.optim.AdamW(groups, lr=options.lr, betas=tuple(options.betas), **fast)


@OPTIMIZERS.register("rmsprop", RmspropOptions)
def rmsprop(options: RmspropOptions, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """RMSprop."""
    groups = param_groups(params, options.weight_decay, options.decay_norm_and_bias)
    return torch.optim.RMSprop(
        groups, lr=options.lr, alpha=options.alpha, momentum=options.momentum, eps=options.eps
    )


@OPTIMIZERS.register("nadam", NAdamOptions)
def nadam(options: NAdamOptions, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """NAdam (Dozat 2016): Adam with Nesterov momentum."""
    groups = param_groups(params, options.weight_decay, options.decay_norm_and_bias)
    return torch.optim.NAdam(
        groups,
        lr=options.lr,
        betas=tuple(options.betas),
        momentum_decay=options.momentum_decay,
        decoupled_weight_decay=options.decoupled_weight_decay,
    )
