"""Multi-label metrics and tuned thresholds (imgcls.evaluate.multilabel) against scikit-learn."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from imgcls.base.errors import UserError
from imgcls.evaluate.multilabel import (
    multilabel_metrics,
    multilabel_scalars,
    precision_recall_curves,
    predict_labels,
    prediction_rows,
    threshold_map,
    thresholds_from_spec,
    tune_thresholds,
)

CLASSES = ["cat", "dog", "car", "tree"]


def fixed_predictions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 images, 4 labels: targets, probabilities loosely correlated with them, thresholds."""
    rng = np.random.default_rng(7)
    targets = (rng.random((40, 4)) < [0.5, 0.3, 0.15, 0.6]).astype(np.float32)
    probabilities = np.clip(0.35 * targets + 0.65 * rng.random((40, 4)), 0, 1)
    return targets, probabilities, np.array([0.5, 0.4, 0.6, 0.45])


def test_metrics_equal_sklearn_on_fixed_predictions():
    y, p, t = fixed_predictions()
    m = multilabel_metrics(y, p, CLASSES, t)
    pred = (p >= t).astype(int)
    assert pred.any() and not pred.all()
    assert m["samples"] == 40
    assert m["map"] == pytest.approx(average_precision_score(y, p, average="macro"))
    assert m["map_left_out"] == []
    assert m["ap_micro"] == pytest.approx(average_precision_score(y, p, average="micro"))
    for avg in ("micro", "macro"):
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))
        assert m[f"precision_{avg}"] == pytest.approx(
            precision_score(y, pred, average=avg, zero_division=0)
        )
        assert m[f"recall_{avg}"] == pytest.approx(
            recall_score(y, pred, average=avg, zero_division=0)
        )
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["accuracy"] == m["subset_accuracy"]
    assert m["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, average=None, zero_division=0
    )
    for c, row in enumerate(m["per_label"]):
        assert row["class"] == CLASSES[c]
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["ap"] == pytest.approx(average_precision_score(y[:, c], p[:, c]))
        assert row["support"] == support[c]
        assert row["threshold"] == t[c]
    json.dumps(m, allow_nan=False)  # strict JSON, as summary.json and test_metrics.json


def test_thresholds_change_the_thresholded_figures_only():
    y, p, t = fixed_predictions()
    at_half = multilabel_metrics(y, p, CLASSES)
    tuned = multilabel_metrics(y, p, CLASSES, t)
    assert at_half["map"] == tuned["map"] and at_half["ap_micro"] == tuned["ap_micro"]
    assert at_half["f1_macro"] != tuned["f1_macro"]
    assert [r["threshold"] for r in at_half["per_label"]] == [0.5] * 4


def test_scalars_are_the_single_numbers_in_a_stable_order():
    y, p, t = fixed_predictions()
    m = multilabel_metrics(y, p, CLASSES, t)
    scalars = multilabel_scalars(m)
    assert list(scalars)[:5] == ["accuracy", "map", "ap_micro", "f1_micro", "f1_macro"]
    assert "hamming_loss" in scalars and "per_label" not in scalars
    assert all(isinstance(v, float) for v in scalars.values())


def brute_force_best_f1(y: np.ndarray, scores: np.ndarray) -> float:
    """The best F1 of any cut: every distinct score, and one above the highest."""
    best = 0.0
    for cut in [*np.unique(scores), scores.max() + 1]:
        best = max(best, f1_score(y, scores >= cut, zero_division=0))
    return best


def test_tuned_thresholds_maximise_f1_on_their_data():
    y, p, _ = fixed_predictions()
    thresholds = tune_thresholds(y, p)
    assert thresholds.shape == (4,)
    for c in range(4):
        tuned = f1_score(y[:, c], p[:, c] >= thresholds[c])
        assert tuned == pytest.approx(brute_force_best_f1(y[:, c], p[:, c]))
        assert tuned >= f1_score(y[:, c], p[:, c] >= 0.5)
    m = multilabel_metrics(y, p, CLASSES, thresholds)
    assert m["f1_macro"] >= multilabel_metrics(y, p, CLASSES)["f1_macro"]


def test_threshold_sits_midway_between_scores_and_prefers_fewer_positives_on_ties():
    # Scores 0.9 (pos), 0.8 (neg), 0.7 (neg), 0.6 (pos), 0.2 (neg): cutting at 0.9 gives F1
    # 2/3 (tp 1, fn 1), at 0.6 also 2/3 (tp 2, fp 2); the tie goes to the higher cut, placed
    # midway to the next lower score, 0.8.
    y = np.array([[1], [0], [0], [1], [0]])
    p = np.array([[0.9], [0.8], [0.7], [0.6], [0.2]])
    assert tune_thresholds(y, p)[0] == pytest.approx(0.85)
    # A clean separation: cut between the lowest positive (0.6) and the highest negative.
    y = np.array([[1], [1], [0], [0]])
    p = np.array([[0.9], [0.6], [0.3], [0.1]])
    assert tune_thresholds(y, p)[0] == pytest.approx(0.45)
    # Best with every image positive: midway between the lowest score and 0.
    y = np.array([[1], [1], [0]])
    p = np.array([[0.2], [0.3], [0.1]])
    assert tune_thresholds(y, p)[0] == pytest.approx(0.15)


def test_labels_never_or_always_positive_keep_half_and_are_left_out_of_map():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=np.float32)
    p = np.array([[0.8, 0.9, 0.2], [0.2, 0.1, 0.4], [0.7, 0.2, 0.9], [0.1, 0.6, 0.7]])
    thresholds = tune_thresholds(y, p)
    assert thresholds[1] == 0.5 and thresholds[2] == 0.5
    assert thresholds[0] == pytest.approx(0.45)  # between positives 0.8, 0.7 and negatives
    m = multilabel_metrics(y, p, ["a", "never", "always"], thresholds)
    assert m["map_left_out"] == ["never"]
    assert m["map"] == pytest.approx(average_precision_score(y[:, [0, 2]], p[:, [0, 2]]))
    never = m["per_label"][1]
    assert never["ap"] is None and never["support"] == 0
    assert m["per_label"][2]["ap"] == pytest.approx(1.0)
    json.dumps(m, allow_nan=False)


def test_no_positive_anywhere_leaves_map_undefined():
    y = np.zeros((3, 2))
    p = np.array([[0.1, 0.7], [0.2, 0.3], [0.6, 0.4]])
    m = multilabel_metrics(y, p, ["a", "b"])
    assert m["map"] is None and m["ap_micro"] is None
    assert m["map_left_out"] == ["a", "b"]
    assert "map" not in multilabel_scalars(m)
    assert list(tune_thresholds(y, p)) == [0.5, 0.5]


def test_one_image():
    y = np.array([[1, 0, 1]])
    p = np.array([[0.9, 0.2, 0.4]])
    m = multilabel_metrics(y, p, ["a", "b", "c"])
    assert m["samples"] == 1
    assert m["subset_accuracy"] == 0.0  # c is missed at 0.5
    assert m["hamming_loss"] == pytest.approx(1 / 3)
    assert m["map"] == pytest.approx(1.0)
    assert list(tune_thresholds(y, p)) == [0.5, 0.5, 0.5]


def test_decision_rule_and_checkpoint_spec_round_trip():
    p = np.array([[0.5, 0.49, 0.8]])
    assert predict_labels(p).tolist() == [[True, False, True]]
    assert predict_labels(p, [0.6, 0.4, 0.8]).tolist() == [[False, True, True]]
    assert list(thresholds_from_spec({"task": "multilabel"}, 3)) == [0.5, 0.5, 0.5]
    assert list(thresholds_from_spec(None, 2)) == [0.5, 0.5]
    assert list(thresholds_from_spec({"thresholds": [0.1, 0.2, 0.3]}, 3)) == [0.1, 0.2, 0.3]
    assert threshold_map(["a", "b"], np.array([0.25, 0.75])) == {"a": 0.25, "b": 0.75}
    for bad in ([0.1], "0.5", [0.1, float("nan"), 0.3], [0.1, True, 0.3], [0.1, "x", 0.2]):
        with pytest.raises(UserError, match=r"best\.pt has data\.thresholds of the wrong form"):
            thresholds_from_spec({"thresholds": bad}, 3, source="best.pt")


def test_precision_recall_curves_for_plots():
    y, p, _ = fixed_predictions()
    y[:, 2] = 0
    curves = precision_recall_curves(y, p, CLASSES)
    assert [c["class"] for c in curves] == ["cat", "dog", "tree"]
    for curve in curves:
        assert len(curve["precision"]) == len(curve["recall"])
        assert curve["recall"][-1] == 0.0 and curve["recall"][0] == 1.0
        assert 0 < curve["ap"] <= 1


def test_shape_mismatch_is_a_programming_error():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        multilabel_metrics(np.zeros(3), np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="classes"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 2)), ["a"])


def test_prediction_rows_read_back_as_label_sets_and_probabilities():
    y = np.array([[1, 0, 1], [0, 0, 0]])
    p = np.array([[0.9, 0.6, 0.3], [0.1, 0.2, 0.123456789]])
    rows = prediction_rows(y, p, ["a, b", "c", "d"], [0.5, 0.7, 0.25])
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    read = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert read[0]["target"] == "a, b|d" and read[0]["prediction"] == "a, b|d"
    assert read[0]["target_indices"] == "0 2" and read[0]["correct"] == "1"
    assert read[1]["target"] == "" and read[1]["prediction"] == "" and read[1]["correct"] == "1"
    assert float(read[1]["probability_d"]) == 0.123456789
    assert list(read[0])[-3:] == ["probability_a, b", "probability_c", "probability_d"]
    rows = prediction_rows(y, p, ["a, b", "c", "d"])  # at 0.5: c is predicted, d is missed
    assert rows[1][2] == "a, b|c" and rows[1][5] == 0
