"""Layer-wise learning-rate decay (``optimizer.layer_decay``), as BEiT and timm fine-tune.

With decay d and a model of layers 0 (the stem) .. L (the head), a parameter of layer i trains
at lr · d^(L − i): the head at the full rate, the layers below it geometrically slower, so
fine-tuning adapts the generic early features least. The layers come from
:mod:`imgcls.models.blocks` (timm's ``group_matcher``; rules for torchvision's ViT, ConvNeXt
and Swin). Applied after the optimizer is built, like :mod:`imgcls.train.lr_groups`: each
group is split by layer and its ``lr`` multiplied, so it composes with the model's own
multipliers, with ``finetune.backbone_lr_mult`` and with the groups without weight decay
(multipliers multiply). Weight decay stays each group's (timm's convention). Schedules built
afterwards scale every group by the same factor, so the ratios hold at every step.
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.models.blocks import LAYERED_FAMILIES, layer_ids


def known_layers(model: nn.Module, decay: float, model_name: str = "") -> dict[str, int]:
    """Each parameter's layer (0 the stem .. L the head); a one-line UserError for a model
    without a known block layout."""
    layers = layer_ids(model)
    if layers is None:
        shown = model_name or type(model).__name__
        raise UserError(
            f"optimizer.layer_decay={decay:g} needs a model whose blocks imgcls knows; "
            f"{shown} has none: use {LAYERED_FAMILIES}, or optimizer.layer_decay=null"
        )
    return layers


def layer_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """Each parameter's learning-rate multiplier d^(L − layer)."""
    layers = known_layers(model, decay)
    last = max(layers.values(), default=0)
    return {name: decay ** (last - layer) for name, layer in layers.items()}


def apply_layer_decay(
    optimizer: torch.optim.Optimizer, model: nn.Module, decay: float | None, model_name: str = ""
) -> str | None:
    """Split the optimizer's groups by layer with ``lr × d^(L − layer)``; returns the line
    that records the multipliers (None when off: ``decay`` None or 1)."""
    if decay is None or decay == 1.0:
        return None
    layers = known_layers(model, decay, model_name)
    last = max(layers.values(), default=0)
    layer_of = {id(p): layers[name] for name, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        parts: dict[int, list[nn.Parameter]] = {}
        for param in group["params"]:
            parts.setdefault(layer_of[id(param)], []).append(param)
        for layer in sorted(parts):
            scale = decay ** (last - layer)
            groups.append({**group, "params": parts[layer], "lr": group["lr"] * scale})
    optimizer.param_groups = groups
    return describe(decay, last)


def describe(decay: float, last: int) -> str:
    """``optimizer.layer_decay=0.75 over layers 0 (stem) .. 13 (head): lr × 0.0238, ...``."""
    multipliers = ", ".join(f"{decay ** (last - i):.4g}" for i in range(last + 1))
    return (
        f"optimizer.layer_decay={decay:g} over layers 0 (stem) .. {last} (head): lr × {multipliers}"
    )
