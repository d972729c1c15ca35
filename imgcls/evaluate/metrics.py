"""Classification metrics from predicted probabilities, computed with scikit-learn.

Every figure that ``imgcls eval`` writes comes from here, so a test can recompute it from
predictions.csv with the same scikit-learn calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def default_topk(num_classes: int) -> list[int]:
    """Top-1, and top-5 where there are more than 5 classes."""
    return [1, 5] if num_classes > 5 else [1]


def usable_topk(topk: Sequence[int], num_classes: int) -> list[int]:
    """The ks that mean something: k = 1 always, k > 1 only below the class count."""
    return sorted({k for k in topk if k == 1 or k < num_classes})


def top_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """(N, k) class indices by decreasing probability (stable for ties)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def compute_metrics(
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    topk: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Accuracy, top-k, balanced accuracy, precision/recall/F1 (macro, weighted, per class),
    confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    labels = np.arange(len(classes))
    predictions = probabilities.argmax(axis=1)
    metrics: dict[str, Any] = {
        "samples": int(len(targets)),
        "accuracy": float(accuracy_score(targets, predictions)),
    }
    for k in usable_topk(topk, len(classes)):
        if k > 1:
            metrics[f"top{k}_accuracy"] = float(
                top_k_accuracy_score(targets, probabilities, k=k, labels=labels)
            )
    metrics["balanced_accuracy"] = balanced_accuracy(targets, predictions)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            targets, predictions, labels=labels, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(p)
        metrics[f"recall_{average}"] = float(r)
        metrics[f"f1_{average}"] = float(f)
    p, r, f, support = precision_recall_fscore_support(
        targets, predictions, labels=labels, average=None, zero_division=0
    )
    metrics["per_class"] = [
        {
            "class": name,
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    ]
    metrics["confusion_matrix"] = confusion_matrix(targets, predictions, labels=labels).tolist()
    metrics["classification_report"] = classification_report(
        targets, predictions, labels=labels, target_names=list(classes), zero_division=0, digits=4
    )
    return metrics


def balanced_accuracy(targets: np.ndarray, predictions: np.ndarray) -> float:
    """scikit-learn's balanced accuracy: the mean recall over the classes present in
    ``targets``, so a skewed split cannot be scored well by predicting its frequent classes.

    The warning for a predicted class that no target holds is silenced: that class has no
    recall to average, as its documentation says, and a run's console is not the place.
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(targets, predictions))


def balanced_figures(
    targets: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """``balanced_accuracy`` and ``per_class_recall`` (``{class: recall}``, 0 for a class with
    no target) of single-label predictions: the figures summary.json keeps for skewed data."""
    from sklearn.metrics import recall_score

    predictions = probabilities.argmax(axis=1)
    recall = recall_score(
        targets, predictions, labels=np.arange(len(classes)), average=None, zero_division=0
    )
    return {
        "balanced_accuracy": balanced_accuracy(targets, predictions),
        "per_class_recall": {str(name): float(r) for name, r in zip(classes, recall, strict=True)},
    }


SCALARS = (
    "accuracy",
    "top5_accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The single-number metrics (top-k of any k included), in a stable order."""
    keys = [k for k in metrics if k.startswith("top") and k.endswith("_accuracy")]
    ordered = ["accuracy", *sorted(keys, key=lambda k: int(k[3:-9]))]
    ordered += [k for k in SCALARS if k not in ordered and k in metrics]
    return {k: float(metrics[k]) for k in ordered if k in metrics}
