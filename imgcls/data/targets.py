"""What a label is: one class per image (``multiclass``) or a set of classes (``multilabel``).

Single-label splits hold class indices (N,) int64; multi-label splits hold (N, classes)
float32 multi-hot rows. A model's logits become probabilities by softmax for the first and
by a sigmoid per class for the second; these helpers keep that choice in one place.
"""

from __future__ import annotations

import numpy as np
import torch

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
TASKS = (MULTICLASS, MULTILABEL)


def is_multilabel(labels: torch.Tensor) -> bool:
    """Whether ``labels`` are multi-hot rows (N, classes) rather than class indices (N,)."""
    return labels.ndim == 2


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Class probabilities: a softmax over classes, or an independent sigmoid per label."""
    return logits.sigmoid() if task == MULTILABEL else logits.softmax(dim=1)


def class_counts(labels: torch.Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Images per class: a bincount of class indices, or the positives of each label."""
    array = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim == 2:
        return (array > 0.5).sum(axis=0).astype(np.int64)
    return np.bincount(array.astype(np.int64), minlength=num_classes).astype(np.int64)
