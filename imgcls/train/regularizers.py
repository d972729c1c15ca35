"""Regularizers, registered in REGULARIZERS; several can be active at once.

A regularizer changes training in one of three ways: the optimizer's weight decay, the
loss's label smoothing, or a penalty term added to the loss (logged under its own name).
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.config.options.regularizers import (
    DropoutOptions,
    L1Options,
    L2Options,
    LabelSmoothingOptions,
    NoRegularizerOptions,
)
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


@REGULARIZERS.register("none", NoRegularizerOptions)
class NoRegularizer(Regularizer):
    """Changes nothing (``regularizer=none``)."""

    def __init__(self, options: NoRegularizerOptions | None = None) -> None:
        pass


@REGULARIZERS.register("l2", L2Options)
class L2(Regularizer):
    """Weight decay on the optimizer."""

    name = "l2"

    def __init__(self, options: L2Options) -> None:
        self.weight_decay = options.weight_decay


@REGULARIZERS.register("label_smoothing", LabelSmoothingOptions)
class LabelSmoothing(Regularizer):
    """Smoothed targets in the loss."""

    name = "label_smoothing"

    def __init__(self, options: LabelSmoothingOptions) -> None:
        self.label_smoothing = options.alpha


@REGULARIZERS.register("l1", L1Options)
class L1(Regularizer):
    """``strength * sum(|w|)`` over every trainable parameter, added to each batch's loss."""

    name = "l1"

    def __init__(self, options: L1Options) -> None:
        self.strength = options.strength

    def penalty(self, model: nn.Module) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad]
        return self.strength * torch.stack([p.abs().sum() for p in params]).sum()


@REGULARIZERS.register("dropout", DropoutOptions)
class Dropout(Regularizer):
    """Sets ``p`` of every ``nn.Dropout*`` module; a model without one is a config mistake."""

    name = "dropout"

    def __init__(self, options: DropoutOptions) -> None:
        self.rate = options.rate

    def configure(self, model: nn.Module, model_name: str = "model") -> None:
        layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        if not layers:
            raise UserError(
                f"regularizer=dropout: model '{model_name}' has no dropout layer to set; "
                "remove it or choose a model with dropout (e.g. simplecnn)"
            )
        for layer in layers:
            layer.p = self.rate
