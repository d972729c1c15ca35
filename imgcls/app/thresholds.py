"""The end of a multi-label run: per-label decision thresholds and the test figures at them.

The thresholds are tuned on the validation split's predictions of the best weights (never on
the test split), written into best.pt's ``data`` spec, where ``eval``, ``predict`` and
``export`` read them (:func:`imgcls.evaluate.multilabel.thresholds_from_spec`), and the test
metrics in summary.json are computed at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from imgcls.base.checkpoint import load_checkpoint, save_checkpoint
from imgcls.evaluate.multilabel import multilabel_metrics, multilabel_scalars, tune_thresholds
from imgcls.train.engine import Predictions, evaluate_and_predict

# summary.json's multi-label test figures, beside the engine's loss. ``accuracy`` is the
# subset accuracy at the tuned thresholds (the engine's is at 0.5).
TEST_KEYS = ("accuracy", "map", "f1_micro", "f1_macro", "subset_accuracy", "hamming_loss")


def tune_on_validation(
    model: nn.Module, loader: Any, precision: str, max_batches: int = 0
) -> np.ndarray:
    """(C,) thresholds maximising each label's F1 on ``loader``'s (the validation split's)
    predictions by ``model``, which holds the weights the test is run with."""
    _, predictions = evaluate_and_predict(model, loader, precision, max_batches=max_batches)
    return tune_thresholds(predictions.labels.numpy(), predictions.probabilities.numpy())


def store_thresholds(checkpoint: Path, thresholds: Sequence[float]) -> None:
    """Put ``thresholds`` into ``checkpoint``'s ``data`` spec, rewriting it atomically.

    The file is replaced by a rename, so a last.pt or epoch file hard-linked to it keeps
    its own copy unchanged.
    """
    state = load_checkpoint(checkpoint, map_location="cpu")
    state["data"] = {**(state.get("data") or {}), "thresholds": [float(t) for t in thresholds]}
    save_checkpoint(checkpoint, state)


def multilabel_test_metrics(
    engine_metrics: dict[str, Any],
    predictions: Predictions,
    classes: Sequence[str],
    thresholds: Sequence[float],
) -> dict[str, Any]:
    """summary.json's ``test``: the engine's figures (loss) with the multi-label ones at
    ``thresholds`` in place of those taken at 0.5."""
    metrics = multilabel_metrics(
        predictions.labels.numpy(), predictions.probabilities.numpy(), classes, thresholds
    )
    scalars = multilabel_scalars(metrics)
    return {**engine_metrics, **{k: scalars[k] for k in TEST_KEYS if k in scalars}}
