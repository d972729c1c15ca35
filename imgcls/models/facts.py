"""Parameter and FLOP counts, measured with PyTorch's own FLOP counter."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> int:
    """Forward FLOPs for one image of ``input_shape`` (C, H, W); 0 if counting fails."""

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_shape), device=device))
        return int(counter.get_total_flops())
    except Exception:
        return 0
    finally:
        model.train(was_training)
