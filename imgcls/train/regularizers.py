"""Regularizers, registered in REGULARIZERS; several can be active at once.

A regularizer changes training in one of three ways: the optimizer's weight decay, the
loss's label smoothing, or a penalty term added to the loss (logged under its own name).
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.errors import UserError
from imgcls.registry import REGULARIZERS


class Regularizer:
    """Base class: changes nothing."""

    name = "none"
    weight_decay: float | None = None
    label_smoothing: float = 0.0

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to the loss, or None."""
        return None


@REGULARIZERS.register("none", "no regularizer")
class NoRegularizer(Regularizer):
    pass


@REGULARIZERS.register("l2", "L2 penalty as optimizer weight decay")
class L2(Regularizer):
    name = "l2"

    def __init__(self, weight_decay: float = 5e-4) -> None:
        if weight_decay < 0:
            raise UserError(
                f"regularizer.l2.weight_decay={weight_decay} is invalid: it must be >= 0"
            )
        self.weight_decay = weight_decay


@REGULARIZERS.register("label_smoothing", "label smoothing of the cross-entropy targets")
class LabelSmoothing(Regularizer):
    name = "label_smoothing"

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0.0 <= alpha < 1.0:
            raise UserError(f"regularizer.label_smoothing.alpha={alpha} is invalid: use [0, 1)")
        self.label_smoothing = alpha
