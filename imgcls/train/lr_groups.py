"""Per-parameter learning-rate multipliers that a model asks for (e.g. airbench's batch-norm
biases at 64x the rate).

A model may define ``lr_multipliers() -> [(parameters, multiplier), ...]``. After the
optimizer is built, :func:`apply_lr_multipliers` moves those parameters out of their groups
into groups of their own with ``lr × multiplier`` and ``weight_decay / multiplier``: the decay
per step (lr × weight decay, as PyTorch's SGD applies it) stays that of the group they came
from, as the airbench recipe does. Schedules built afterwards scale every group alike.
"""

from __future__ import annotations

import torch
from torch import nn


def apply_lr_multipliers(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Give the parameters of ``model.lr_multipliers()`` (if it has them) their own groups."""
    hook = getattr(model, "lr_multipliers", None)
    if hook is None:
        return
    groups = optimizer.param_groups
    for params, mult in hook():
        if mult == 1.0:
            continue
        chosen = {id(p) for p in params}
        new_groups = []
        for group in groups:
            rest = [p for p in group["params"] if id(p) not in chosen]
            moved = [p for p in group["params"] if id(p) in chosen]
            if rest:
                new_groups.append({**group, "params": rest})
            if moved:
                decay = group.get("weight_decay", 0.0) / mult
                new_groups.append(
                    {**group, "params": moved, "lr": group["lr"] * mult, "weight_decay": decay}
                )
        groups = new_groups
    optimizer.param_groups = groups
