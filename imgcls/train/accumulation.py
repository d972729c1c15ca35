"""Gradient accumulation: weights that make k small batches equal one large batch."""

from __future__ import annotations

from imgcls.data.loader import DeviceLoader


def accumulation_weights(loader: DeviceLoader, steps: int, k: int) -> list[float] | None:
    """Per-batch loss weights so that k accumulated batches equal one batch of their union.

    Batch i is weighted by its size over the size of its accumulation group (the last
    group may be smaller), so the summed gradient is the gradient of the group's mean loss.
    """
    if k == 1:
        return None
    n, size = len(loader.data), loader.batch_size
    sizes = [min(size, n - i * size) for i in range(steps)]
    weights = []
    for i, batch in enumerate(sizes):
        group = i // k
        weights.append(batch / sum(sizes[group * k : (group + 1) * k]))
    return weights
