"""Calibration: how far a model's probabilities are from the frequencies they claim, and one
temperature that brings them closer.

Figures (:func:`calibration_figures`), single-label runs (softmax probabilities):

- **ECE**, expected calibration error (Guo et al., 2017): the confidence of an image is its
  largest probability, its prediction the class with it. The confidences fall into 15
  equal-width bins ``(0, 1/15], (1/15, 2/15], ..., (14/15, 1]``; ECE is the sum over bins of
  ``|accuracy(bin) - mean confidence(bin)|`` weighted by the bin's share of the images.
- **MCE**, maximum calibration error: the largest of those gaps over the non-empty bins.
- **NLL**: the mean over images of ``-log p(true class)`` (probabilities clipped at 1e-12).
- **Brier score**: the mean over images of the *sum over classes* of
  ``(p_c - onehot_c)^2`` (the multi-class definition of Brier, 1950; between 0 and 2).

Multi-label runs (a sigmoid per label) get the same figures on the per-(image, label) binary
probabilities, each pair a two-class decision at 0.5: its confidence is ``max(p, 1 - p)``
and it is right when ``(p >= 0.5) == label``; NLL is the mean binary cross-entropy and
Brier the mean of ``(p - label)^2`` over the pairs.

Temperature scaling (:func:`fit_temperature`) divides the logits by one number T fitted on
the validation split by minimising the NLL over ``log T`` (scipy's bounded Brent search; the
NLL is convex in 1/T, so the search finds its one minimum). T changes no prediction (the
order of the logits stays), only how sure the probabilities are. T travels in a checkpoint's
``data`` spec as ``temperature`` (read with :func:`temperature_from_spec`), the way a
multi-label run's thresholds do.

This module imports numpy only at module level (scipy inside the fit), so the torch-free
ONNX predict can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgcls.base.errors import UserError, unknown_choice

BINS = 15
EPS = 1e-12  # probabilities are clipped at this for the NLL
METHODS = ("none", "temperature")
# The search interval of log T: T from 0.01 to 100.
LOG_T_BOUNDS = (math.log(0.01), math.log(100.0))
FIGURES = ("ece", "mce", "nll", "brier")


@dataclass
class Reliability:
    """Per confidence bin: how many decisions, their mean confidence and their accuracy
    (NaN for an empty bin); the edges are ``BINS + 1`` numbers from 0 to 1."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Plain lists for JSON (an empty bin's confidence and accuracy are None)."""

        def plain(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else float(v) for v in values]

        return {
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "confidence": plain(self.confidence),
            "accuracy": plain(self.accuracy),
        }


def decisions(targets: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of every decision: one per image (single-label: top class), or
    one per (image, label) pair (multi-label, ``targets`` (N, C) multi-hot)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets)
    if y.ndim == 2:  # multi-label: each (image, label) is a two-class decision at 0.5
        positive = p >= 0.5
        confidence = np.where(positive, p, 1.0 - p).reshape(-1)
        correct = (positive == (y > 0.5)).reshape(-1)
        return confidence, correct
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y.astype(np.int64)
    return confidence, correct


def reliability(targets: Any, probabilities: Any, bins: int = BINS) -> Reliability:
    """The decisions binned by confidence: bin ``b`` holds ``edges[b] < confidence <=
    edges[b + 1]`` (a confidence of 0 goes to the first bin)."""
    confidence, correct = decisions(targets, probabilities)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    right = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / np.maximum(counts, 1), np.nan)
        accuracy = np.where(counts > 0, right / np.maximum(counts, 1), np.nan)
    return Reliability(edges, counts, mean_conf, accuracy)


def ece_mce(table: Reliability) -> tuple[float, float]:
    """Expected and maximum calibration error of a binned table."""
    total = int(table.counts.sum())
    if total == 0:
        return float("nan"), float("nan")
    filled = table.counts > 0
    gaps = np.abs(table.accuracy[filled] - table.confidence[filled])
    ece = float((gaps * table.counts[filled]).sum() / total)
    return ece, float(gaps.max())


def nll(targets: Any, probabilities: Any) -> float:
    """Mean negative log-likelihood of the true class (multi-label: mean binary
    cross-entropy over the (image, label) pairs)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1.0)
    y = np.asarray(targets)
    if y.ndim == 2:
        q = np.clip(1.0 - np.asarray(probabilities, dtype=np.float64), EPS, 1.0)
        positive = y > 0.5
        return float(-np.where(positive, np.log(p), np.log(q)).mean())
    return float(-np.log(p[np.arange(len(y)), y.astype(np.int64)]).mean())


def brier(targets: Any, probabilities: Any) -> float:
    """Brier score: mean over images of the sum over classes of ``(p - onehot)^2``
    (multi-label: the mean of ``(p - label)^2`` over the (image, label) pairs)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets)
    if y.ndim == 2:
        return float(((p - (y > 0.5)) ** 2).mean())
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y.astype(np.int64)] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def calibration_figures(targets: Any, probabilities: Any, bins: int = BINS) -> dict[str, float]:
    """``{ece, mce, nll, brier}`` of ``probabilities`` (N, C) against ``targets`` (class
    indices (N,) or multi-hot (N, C))."""
    if len(np.asarray(targets)) == 0:
        return {}
    ece, mce = ece_mce(reliability(targets, probabilities, bins))
    return {
        "ece": ece,
        "mce": mce,
        "nll": nll(targets, probabilities),
        "brier": brier(targets, probabilities),
    }


# --- temperature scaling -------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (the row maximum subtracted first)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function in float64, without overflow."""
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def scaled_probabilities(logits: Any, temperature: float, multilabel: bool) -> np.ndarray:
    """The probabilities of ``logits / temperature``: softmax, or a sigmoid per label."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    return sigmoid(z) if multilabel else softmax(z)


def scaled_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """The NLL of ``logits / temperature``, computed from the logits (log-sum-exp, and
    log-sigmoid for multi-label targets), so that no probability underflows."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(targets)
    if y.ndim == 2:  # binary cross-entropy with logits: log(1 + e^z) - y z
        return float((np.logaddexp(0.0, z) - (y > 0.5) * z).mean())
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float((log_norm - z[np.arange(len(y)), y.astype(np.int64)]).mean())


def fit_temperature(logits: Any, targets: Any) -> float:
    """The temperature T > 0 minimising the NLL of ``logits / T`` on (validation) data.

    The search runs over ``log T`` in [log 0.01, log 100] (scipy's bounded Brent method,
    tolerance 1e-6 in log T). Single-label ``targets`` are class indices (N,), multi-label
    ones multi-hot rows (N, C), whose sigmoid logits share the one T.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets)
    if z.ndim != 2 or len(z) == 0 or len(z) != len(y):
        raise ValueError(f"need (N, C) logits and N targets; got {z.shape} and {y.shape}")
    if not np.isfinite(z).all():
        raise UserError("cannot fit a temperature: the validation logits are not all finite")
    result = minimize_scalar(
        lambda log_t: scaled_nll(z, y, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def check_temperature(value: Any, source: str = "the checkpoint") -> float:
    """``value`` as a finite positive float; anything else is a one-line UserError naming
    ``source`` (a damaged or foreign file)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise UserError(
            f"{source} has a temperature of the wrong form: expected a finite number > 0, "
            f"got {value!r}"
        )
    return float(value)


def temperature_from_spec(
    data_spec: Mapping[str, Any] | None, source: str = "the checkpoint"
) -> float:
    """The temperature a checkpoint's ``data`` spec (or export.json) stores, or 1.0 (no
    scaling) when it stores none."""
    stored = (data_spec or {}).get("temperature")
    return 1.0 if stored is None else check_temperature(stored, source)


def check_method(value: Any) -> str:
    """``calibrate=`` as text: ``none`` or ``temperature``; anything else a UserError."""
    text = str(getattr(value, "value", value))
    if text not in METHODS:
        raise unknown_choice("calibrate", text, METHODS)
    return text


def calibration_record(
    method: str,
    temperature: float,
    split: str,
    before: Mapping[str, float],
    after: Mapping[str, float],
    fitted_on: str = "val",
) -> dict[str, Any]:
    """summary.json's ``calibration`` block (and eval's): the method, T, where it was fitted
    and the figures of ``split`` before and after scaling."""
    return {
        "method": method,
        "temperature": float(temperature),
        "fitted_on": fitted_on,
        "split": split,
        "bins": BINS,
        "before": {k: float(before[k]) for k in FIGURES if k in before},
        "after": {k: float(after[k]) for k in FIGURES if k in after},
    }
