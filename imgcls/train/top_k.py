"""Keeping the k best epochs' checkpoints (``trainer.save_top_k``)."""

from __future__ import annotations

import math


def update_top_k(
    top_k: list[tuple[float, int]], value: float, epoch: int, k: int, mode: str
) -> tuple[list[tuple[float, int]], list[int]]:
    """The k best (value, epoch) pairs after adding this epoch, and the epochs that fell out."""
    if not math.isfinite(value):
        return list(top_k), []
    ranked = sorted(
        [*map(tuple, top_k), (value, epoch)],
        key=lambda item: (-item[0] if mode == "max" else item[0], item[1]),
    )
    keep = [(float(v), int(e)) for v, e in ranked[:k]]
    dropped = [int(e) for _, e in ranked[k:]]
    return keep, dropped
