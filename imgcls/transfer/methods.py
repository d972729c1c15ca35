"""Training methods (``method=standard|dann|distill``), registered in METHODS.

A method may replace the engine's default cross-entropy step with its own ``step_loss``
(``(model, images, labels) -> (loss, logits, extra terms)``; the extra terms become metrics
columns), add trainable modules of its own to the optimizer, score the model per epoch
(``epoch_metrics``) and add figures to the summary at the end (``final_metrics``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from imgcls.config.options.methods import StandardOptions
from imgcls.registry import METHODS
from imgcls.train.engine import StepLoss


class Method:
    """Plain supervised training: the engine's own cross-entropy step."""

    name = "standard"
    resumable = True  # exact resume (imgcls train resume=...) restores everything it needs
    step_loss: StepLoss | None = None

    def modules(self) -> list[nn.Module]:
        """Trainable modules of the method itself (optimised with the model)."""
        return []

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for m in self.modules() for p in m.parameters()]
        if params:
            optimizer.add_param_group({"params": params})

    def epoch_metrics(self, model: nn.Module) -> dict[str, float]:
        return {}

    def final_metrics(self, model: nn.Module) -> dict[str, Any]:
        return {}


@METHODS.register("standard", StandardOptions)
def standard(options: StandardOptions) -> Method:
    """Plain supervised training (the engine's cross-entropy step)."""
    return Method()
