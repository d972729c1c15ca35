"""An exponential moving average of the model's weights, for validation and the best checkpoint.

After every optimizer step each floating-point entry of the state dict (parameters and
buffers such as batch-norm statistics) follows ``ema = decay * ema + (1 - decay) * w``;
integer buffers (``num_batches_tracked``) are copied. The averaged model is a separate copy,
so training is unaffected.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list]:
        ema_state, state = self.module.state_dict(), model.state_dict()
        floats_ema, floats, others = [], [], []
        for key, value in ema_state.items():
            if value.is_floating_point():
                floats_ema.append(value)
                floats.append(state[key].detach())
            else:
                others.append((value, state[key]))
        return floats_ema, floats, others

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average, on the device, without a host synchronisation."""
        floats_ema, floats, others = self._pairs(model)
        torch._foreach_lerp_(floats_ema, floats, 1.0 - self.decay)
        for target, source in others:
            target.copy_(source)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "model": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
