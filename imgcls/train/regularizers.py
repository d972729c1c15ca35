"""Regularizers, registered in REGULARIZERS; several can be active at once.

A regularizer changes training in one of three ways: the optimizer's weight decay, the
loss's label smoothing, or a penalty term added to the loss (logged under its own name).
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.registry import REGULARIZERS


class Regularizer:
    """Base class: changes nothing."""

    name = "none"
    weight_decay: float | None = None
    label_smoothing: float = 0.0

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to the loss, or None."""
        return None

    def configure(self, model: nn.Module, model_name: str = "model") -> None:
        """Change the built model before training (nothing by default)."""


@REGULARIZERS.register("none")
class NoRegularizer(Regularizer):
    pass


@REGULARIZERS.register("l2")
class L2(Regularizer):
    name = "l2"

    def __init__(self, weight_decay: float = 5e-4) -> None:
        if weight_decay < 0:
            raise UserError(
                f"regularizer.l2.weight_decay={weight_decay} is invalid: it must be >= 0"
            )
        self.weight_decay = weight_decay


@REGULARIZERS.register("label_smoothing")
class LabelSmoothing(Regularizer):
    name = "label_smoothing"

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0.0 <= alpha < 1.0:
            raise UserError(f"regularizer.label_smoothing.alpha={alpha} is invalid: use [0, 1)")
        self.label_smoothing = alpha


@REGULARIZERS.register("l1")
class L1(Regularizer):
    """``strength * sum(|w|)`` over every trainable parameter, added to each batch's loss."""

    name = "l1"

    def __init__(self, strength: float = 1e-5) -> None:
        if strength < 0:
            raise UserError(f"regularizer.l1.strength={strength} is invalid: it must be >= 0")
        self.strength = strength

    def penalty(self, model: nn.Module) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad]
        return self.strength * torch.stack([p.abs().sum() for p in params]).sum()


@REGULARIZERS.register("dropout")
class Dropout(Regularizer):
    """Sets ``p`` of every ``nn.Dropout*`` module; a model without one is a config mistake."""

    name = "dropout"

    def __init__(self, rate: float = 0.5) -> None:
        if not 0.0 <= rate < 1.0:
            raise UserError(f"regularizer.dropout.rate={rate} is invalid: use [0, 1)")
        self.rate = rate

    def configure(self, model: nn.Module, model_name: str = "model") -> None:
        layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        if not layers:
            raise UserError(
                f"regularizer=dropout: model '{model_name}' has no dropout layer to set; "
                "remove it or choose a model with dropout (e.g. simplecnn)"
            )
        for layer in layers:
            layer.p = self.rate
