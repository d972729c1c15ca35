"""Early stopping: stop when the monitored metric has not improved for ``patience`` epochs.

An epoch improves when it beats the best value so far by more than ``min_delta`` (in the
direction of ``mode``). After ``patience`` epochs in a row without improvement, training stops.
"""

from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs in a row; its state is saved in every checkpoint, so a resumed run counts on.
    The values are checked where they are configured
    (:class:`~imgcls.config.options.trainer.EarlyStoppingOptions`)."""

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float = 0.0) -> None:
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
