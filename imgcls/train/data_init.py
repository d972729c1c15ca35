"""Initialisation from training data before step 0 (airbench's patch whitening), timed.

A model may define ``initialize_from_data(images)``; the run calls it once with the first
``model.init_images`` training images (default 5000), normalised as the loaders normalise
them, unaugmented, on the training device.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from imgcls.data.splits import DataSplits


def initialize_from_data(model: nn.Module, data: DataSplits, device: torch.device) -> float | None:
    """Run the model's hook if it has one; return its seconds (None when it has none)."""
    hook = getattr(model, "initialize_from_data", None)
    if hook is None:
        return None
    started = time.perf_counter()
    count = min(int(getattr(model, "init_images", 5000)), len(data.train))
    train = data.train
    if getattr(train, "in_memory", False):
        images = train.images[:count].to(device)
    else:  # files read on demand: decode only the images used
        images = train.subset(np.arange(count)).materialize().images.to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    hook((images.float() / 255.0 - mean) / std)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
