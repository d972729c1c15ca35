"""Multi-label metrics and per-label decision thresholds, computed with scikit-learn.

A multi-label model gives one sigmoid probability per label; an image carries label ``c``
when its probability reaches that label's threshold (``probability >= threshold``, see
:func:`predict_labels`). The thresholds are tuned on the validation split to maximise each
label's F1 (:func:`tune_thresholds`), stored in the best checkpoint's ``data`` spec as
``thresholds`` (a list of C floats) and read back by every surface with
:func:`thresholds_from_spec`, so that the end of a run, ``eval``, ``predict`` and an
exported model apply the same rule to the same numbers.

Figures that need no threshold (average precision) are computed from the probabilities;
the rest (F1, precision, recall, subset accuracy, Hamming loss) from the thresholded sets.
``accuracy`` is the subset accuracy, so a leaderboard's accuracy column still means "every
label of the image right". Undefined figures (AP of a label with no positive image) are
None rather than NaN, so that the JSON files stay strict JSON.

This module imports numpy only at module level (scikit-learn inside the functions), so the
torch-free ONNX predict can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imgcls.base.errors import UserError
from imgcls.evaluate.average_precision import mean_average_precision

DEFAULT_THRESHOLD = 0.5

# Two F1 values closer than this are a tie (F1 from floats: 2PR/(P+R) of equal fractions can
# differ in the last bits).
_F1_TIE = 1e-12


def _as_arrays(targets: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) 0/1 int targets and (N, C) float64 probabilities, shapes checked."""
    y = np.asarray(targets)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(
            f"multi-label targets and probabilities must both be (N, C); got {y.shape} and "
            f"{p.shape}"
        )
    return (y > 0.5).astype(np.int64), p


def _as_thresholds(thresholds: Any, num_classes: int) -> np.ndarray:
    """(C,) float64 thresholds; None means 0.5 for every label."""
    if thresholds is None:
        return np.full(num_classes, DEFAULT_THRESHOLD)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.shape != (num_classes,):
        raise ValueError(f"expected {num_classes} thresholds, got {t.shape[0]}")
    return t


def predict_labels(probabilities: Any, thresholds: Any = None) -> np.ndarray:
    """(N, C) bool: label ``c`` is predicted where its probability >= its threshold.

    The one decision rule of multi-label predictions; ``thresholds`` (C,) or None (0.5).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    return p >= _as_thresholds(thresholds, p.shape[-1])


def thresholds_from_spec(
    data_spec: Mapping[str, Any] | None, num_classes: int, source: str = "the checkpoint"
) -> np.ndarray:
    """The thresholds a checkpoint's ``data`` spec stores, or 0.5 for each label without them.

    A stored entry that is not ``num_classes`` finite numbers is a one-line UserError naming
    ``source`` (a damaged or foreign checkpoint, not a bug).
    """
    stored = (data_spec or {}).get("thresholds")
    if stored is None:
        return np.full(num_classes, DEFAULT_THRESHOLD)
    values = list(stored) if isinstance(stored, (list, tuple)) else None
    if (
        values is None
        or len(values) != num_classes
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in values
        )
    ):
        raise UserError(
            f"{source} has data.thresholds of the wrong form: expected a list of "
            f"{num_classes} finite numbers (one per class), got {_short(stored)}"
        )
    return np.asarray(values, dtype=np.float64)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def threshold_map(classes: Sequence[str], thresholds: Any) -> dict[str, float]:
    """{class: threshold}, the form summary.json keeps."""
    t = _as_thresholds(thresholds, len(classes))
    return {name: float(value) for name, value in zip(classes, t, strict=True)}


def _best_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The F1-maximising threshold of one label (which has positives and negatives).

    Candidates are the distinct scores (precision_recall_curve's thresholds: positive when
    score >= t). Among equal best F1 the highest candidate wins (fewer false positives for
    the same F1). The threshold returned is the midpoint between that score and the next
    lower distinct score (0 below the lowest): it makes the same predictions on these data
    and leaves a margin, so that a tiny shift in a probability does not flip a prediction.
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, candidates = precision_recall_curve(y, scores)
    precision, recall = precision[: len(candidates)], recall[: len(candidates)]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    best = np.flatnonzero(f1 >= f1.max() - _F1_TIE)[-1]
    chosen = float(candidates[best])
    lower = scores[scores < chosen]
    below = float(lower.max()) if lower.size else 0.0
    return (chosen + below) / 2.0


def tune_thresholds(targets: Any, probabilities: Any) -> np.ndarray:
    """Per label, the decision threshold that maximises F1 on these (validation) predictions.

    A label whose images are all negative or all positive says nothing about where to cut,
    and keeps 0.5. Ties and the exact position of the cut: see :func:`_best_threshold`.
    """
    y, p = _as_arrays(targets, probabilities)
    thresholds = np.full(y.shape[1], DEFAULT_THRESHOLD)
    for c in range(y.shape[1]):
        positives = int(y[:, c].sum())
        if 0 < positives < len(y):
            thresholds[c] = _best_threshold(y[:, c], p[:, c])
    return thresholds


def _average_precision(y: np.ndarray, p: np.ndarray, average: str) -> float | None:
    from sklearn.metrics import average_precision_score

    if y.size == 0 or not y.any():
        return None
    return float(average_precision_score(y, p, average=average))


def multilabel_metrics(
    targets: Any,
    probabilities: Any,
    classes: Sequence[str],
    thresholds: Any = None,
) -> dict[str, Any]:
    """mAP, micro/macro F1, precision, recall, subset accuracy, Hamming loss, per-label table.

    ``targets`` (N, C) multi-hot, ``probabilities`` (N, C) sigmoid outputs, ``thresholds``
    (C,) or None (0.5). ``map`` is the macro average precision over the labels with at least
    one positive image (AP is undefined without one); ``map_left_out`` names the others.
    Macro precision, recall and F1 average over every label, scikit-learn's
    ``zero_division=0`` (a label never present and never predicted counts 0).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        hamming_loss,
        precision_recall_fscore_support,
    )

    y, p = _as_arrays(targets, probabilities)
    if y.shape[1] != len(classes):
        raise ValueError(f"{y.shape[1]} label columns for {len(classes)} classes")
    t = _as_thresholds(thresholds, len(classes))
    predicted = predict_labels(p, t).astype(np.int64)
    support = y.sum(axis=0)
    present = support > 0
    n = len(y)

    metrics: dict[str, Any] = {"samples": int(n)}
    subset = float(accuracy_score(y, predicted)) if n else None
    metrics["accuracy"] = subset
    mean_ap = mean_average_precision(y, p)  # the same figure as the engine's val_map
    metrics["map"] = mean_ap if np.isfinite(mean_ap) else None
    metrics["map_left_out"] = [
        name for name, keep in zip(classes, present, strict=True) if not keep
    ]
    metrics["ap_micro"] = _average_precision(y, p, "micro")
    for average in ("micro", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, predicted, average=average, zero_division=0
        )
        metrics[f"f1_{average}"] = float(f1)
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
    metrics["subset_accuracy"] = subset
    metrics["hamming_loss"] = float(hamming_loss(y, predicted)) if n else None

    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average=None, zero_division=0
    )
    metrics["per_label"] = [
        {
            "class": name,
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "ap": float(average_precision_score(y[:, c], p[:, c])) if present[c] else None,
            "support": int(support[c]),
            "threshold": float(t[c]),
        }
        for c, name in enumerate(classes)
    ]
    return metrics


def precision_recall_curves(
    targets: Any, probabilities: Any, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Per label with a positive image: its precision-recall curve and AP, for plots.

    Each item: ``class``, ``precision`` and ``recall`` (lists, recall decreasing to 0, as
    scikit-learn's precision_recall_curve gives them) and ``ap``.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, p = _as_arrays(targets, probabilities)
    curves = []
    for c, name in enumerate(classes):
        if not y[:, c].any():
            continue
        precision, recall, _ = precision_recall_curve(y[:, c], p[:, c])
        curves.append(
            {
                "class": name,
                "precision": precision.tolist(),
                "recall": recall.tolist(),
                "ap": float(average_precision_score(y[:, c], p[:, c])),
            }
        )
    return curves


# Label sets in predictions.csv: class names joined by this, in class order.
SET_SEPARATOR = "|"


def prediction_rows(
    targets: Any, probabilities: Any, classes: Sequence[str], thresholds: Any = None
) -> list[list[Any]]:
    """Header and rows of a multi-label predictions.csv, one row per image.

    Columns: ``index``, ``target`` and ``prediction`` (label sets, class names joined by
    ``|`` in class order; empty for no label), ``target_indices`` and
    ``prediction_indices`` (the same sets as space-separated class indices, unambiguous
    whatever the names hold), ``correct`` (1 when the two sets are equal) and one
    ``probability_<class>`` column per label (``repr`` of the float, so it reads back
    exactly).
    """
    y, p = _as_arrays(targets, probabilities)
    predicted = predict_labels(p, thresholds)
    header = ["index", "target", "prediction", "target_indices", "prediction_indices"]
    header += ["correct", *(f"probability_{name}" for name in classes)]
    rows: list[list[Any]] = [header]
    for index in range(len(y)):
        true_set = np.flatnonzero(y[index])
        predicted_set = np.flatnonzero(predicted[index])
        rows.append(
            [
                index,
                SET_SEPARATOR.join(classes[c] for c in true_set),
                SET_SEPARATOR.join(classes[c] for c in predicted_set),
                " ".join(str(c) for c in true_set),
                " ".join(str(c) for c in predicted_set),
                int(np.array_equal(true_set, predicted_set)),
                *(repr(float(v)) for v in p[index]),
            ]
        )
    return rows


SCALARS = (
    "accuracy",
    "map",
    "ap_micro",
    "f1_micro",
    "f1_macro",
    "precision_micro",
    "precision_macro",
    "recall_micro",
    "recall_macro",
    "subset_accuracy",
    "hamming_loss",
)


def multilabel_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The single-number multi-label metrics in a stable order; undefined ones left out."""
    return {k: float(metrics[k]) for k in SCALARS if metrics.get(k) is not None}
