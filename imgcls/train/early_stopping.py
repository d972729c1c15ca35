"""Early stopping: stop when the monitored metric has not improved for ``patience`` epochs.

An epoch improves when it beats the best value so far by more than ``min_delta`` (in the
direction of ``mode``). After ``patience`` epochs in a row without improvement, training stops.
"""

from __future__ import annotations

import math
from typing import Any

from imgcls.base.errors import UserError


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs in a row; its state is saved in every checkpoint, so a resumed run counts on."""

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise UserError(f"trainer.early_stopping.patience={patience} is invalid: use >= 1")
        if min_delta < 0:
            raise UserError(f"trainer.early_stopping.min_delta={min_delta} is invalid: use >= 0")
        if mode not in ("max", "min"):
            raise UserError(f"trainer.early_stopping.mode={mode} is invalid: use max or min")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when training should stop now."""
        if math.isfinite(value) and (self.best is None or self._improves(value)):
            self.best, self.bad_epochs = value, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def _improves(self, value: float) -> bool:
        assert self.best is not None
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], int(state["bad_epochs"])
