"""Lookahead on the weights (airbench's version): slow weights that the fast ones return to.

Every ``every`` optimizer steps the slow copy moves towards the trained (fast) weights and the
fast weights are reset to it::

    slow <- decay_t · slow + (1 - decay_t) · fast;   fast <- slow

with ``decay_t = decay · (step / total_steps) ** power``: no averaging at the start (decay_t
= 0 leaves the weights as they are), more towards the end. After the last step of the run
the fast weights become the slow ones (decay 1). Every floating-point entry of the state dict
takes part (batch-norm statistics too); integer buffers are left alone. Unlike
``trainer.ema`` (a separate averaged copy used for evaluation), this changes the weights
that train.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from imgcls.config.options.trainer import TrainerOptions


class Lookahead:
    def __init__(
        self, model: nn.Module, every: int, decay: float, power: float, total_steps: int
    ) -> None:
        self.every, self.decay, self.power = int(every), float(decay), float(power)
        self.total_steps = max(int(total_steps), 1)
        self.keys = [k for k, v in model.state_dict().items() if v.is_floating_point()]
        state = model.state_dict()
        self.slow = [state[k].detach().clone() for k in self.keys]

    def decay_at(self, step: int) -> float:
        return self.decay * min(step / self.total_steps, 1.0) ** self.power

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step ``step`` (1-based); acts every ``every`` steps and at
        the last step of the run."""
        regular = step % self.every == 0
        last = step == self.total_steps
        if not (regular or last):
            return
        state = model.state_dict()
        fast = [state[k] for k in self.keys]
        if regular:
            torch._foreach_lerp_(self.slow, [f.detach() for f in fast], 1.0 - self.decay_at(step))
        torch._foreach_copy_(fast, self.slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": dict(zip(self.keys, self.slow, strict=True))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for target, key in zip(self.slow, self.keys, strict=True):
            target.copy_(state["slow"][key])


def make_lookahead(
    model: nn.Module, trainer: TrainerOptions, batches_per_epoch: int
) -> Lookahead | None:
    """The run's lookahead (``trainer.lookahead``), or None when ``every`` is 0 (off)."""
    options = trainer.lookahead
    if options.every <= 0:
        return None
    total = trainer.run_epochs * trainer.optimizer_steps(batches_per_epoch)
    return Lookahead(model, options.every, options.decay, options.power, total)
