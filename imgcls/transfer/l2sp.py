"""L2-SP (Li et al. 2018): keep fine-tuned weights near their pre-trained starting point.

The penalty ``alpha * ||theta - theta_pre||^2`` sums over the backbone parameters loaded by
``finetune.from`` (the new head is free), with ``theta_pre`` copied at load time. It is a
``penalty(model)`` regularizer, so the engine adds it to the loss and logs ``l2sp_loss``.
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.config.options.regularizers import L2SPOptions
from imgcls.registry import REGULARIZERS
from imgcls.train.regularizers import Regularizer
from imgcls.transfer.finetune import LOADED_ATTRIBUTE


@REGULARIZERS.register("l2sp", L2SPOptions)
class L2SP(Regularizer):
    """A penalty pulling the loaded weights back towards their pre-trained values."""

    name = "l2sp"

    def __init__(self, options: L2SPOptions) -> None:
        self.alpha = options.alpha
        self.names: list[str] = []
        self.reference: list[torch.Tensor] = []

    def configure(self, model: nn.Module, model_name: str = "model") -> None:
        loaded = getattr(model, LOADED_ATTRIBUTE, None)
        if loaded is None:
            raise UserError(
                "regularizer=l2sp needs pre-trained weights to stay near: "
                "set finetune.from=<run dir | checkpoint.pt | torchvision>"
            )
        params = dict(model.named_parameters())
        self.names = [n for n in params if n in loaded and params[n].requires_grad]
        self.reference = [params[n].detach().clone() for n in self.names]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        if not self.names:
            return torch.zeros((), device=next(model.parameters()).device)
        squares = [
            (params[n] - ref.to(params[n].device)).pow(2).sum()
            for n, ref in zip(self.names, self.reference, strict=True)
        ]
        return self.alpha * torch.stack(squares).sum()
