"""Mean average precision (mAP) of multi-label predictions, with scikit-learn.

The figure that picks the best epoch of a multi-label run (``val_map``) and heads its
reports: the macro average, over the labels that have at least one positive image, of
scikit-learn's ``average_precision_score`` (a label without positives has no defined AP).
"""

from __future__ import annotations

import numpy as np


def mean_average_precision(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro average precision over the labels with at least one positive (NaN if none)."""
    from sklearn.metrics import average_precision_score

    truth = np.asarray(targets) > 0.5
    present = truth.any(axis=0)
    if not present.any():
        return float("nan")
    return float(
        average_precision_score(
            truth[:, present], np.asarray(probabilities)[:, present], average="macro"
        )
    )
