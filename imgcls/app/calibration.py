"""Temperature scaling of a run: fitted at the end of training (``calibrate=temperature``) or
afterwards (``imgcls eval run=<dir> calibrate=temperature``), stored in best.pt.

The temperature is fitted on the validation split's logits of the weights the test uses
(never on the test split), written into best.pt's ``data`` spec as ``temperature`` — where
``eval``, ``predict`` and ``export`` read it (:func:`imgcls.evaluate.calibration.
temperature_from_spec`), as a multi-label run's thresholds travel — and recorded in
summary.json's ``calibration`` block with the test split's ECE, MCE, NLL and Brier score
before and after scaling. The test metrics stay the engine's: T changes no prediction.

Multi-label runs are refused: their decision thresholds are tuned on the unscaled
probabilities, and a temperature would move the probabilities under them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from imgcls.app.inference import predict_logits
from imgcls.base.checkpoint import load_checkpoint, save_checkpoint
from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder
from imgcls.data.targets import MULTILABEL
from imgcls.evaluate.calibration import (
    calibration_figures,
    calibration_record,
    check_method,
    fit_temperature,
    scaled_probabilities,
)
from imgcls.train.engine import Predictions, evaluate_and_predict

TEMPERATURE = "temperature"


def wanted(cfg: Any) -> bool:
    """Whether the config asks for temperature scaling (``calibrate=temperature``)."""
    return check_method(cfg.get("calibrate", "none")) == TEMPERATURE


def check_task(task: str, where: str = "calibrate=temperature") -> None:
    """Refuse temperature scaling for a multi-label run (one line, before any work)."""
    if task == MULTILABEL:
        raise UserError(
            f"{where} applies to single-label runs: a multi-label run decides at per-label "
            "thresholds tuned on its unscaled probabilities (its ECE, MCE, NLL and Brier "
            "score are still reported); use calibrate=none"
        )


def validation_logits(
    model: nn.Module, loader: Any, precision: str, max_batches: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, C), labels) of ``loader``'s split by ``model`` (the weights, and the
    test-time augmentation, that the test runs with)."""
    _, predictions = evaluate_and_predict(model, loader, precision, max_batches=max_batches)
    assert predictions.logits is not None
    return predictions.logits.double().numpy(), predictions.labels.numpy()


def store_temperature(checkpoint: Path, temperature: float) -> None:
    """Put ``temperature`` into ``checkpoint``'s ``data`` spec, rewriting it atomically (a
    rename: a last.pt hard-linked to it keeps its own copy)."""
    state = load_checkpoint(checkpoint, map_location="cpu")
    state["data"] = {**(state.get("data") or {}), "temperature": float(temperature)}
    save_checkpoint(checkpoint, state)


def test_figures(predictions: Predictions) -> dict[str, float]:
    """ECE, MCE, NLL and Brier score of the test pass's probabilities (every run)."""
    return calibration_figures(
        predictions.labels.numpy(), predictions.probabilities.double().numpy()
    )


def calibrate_run(
    model: nn.Module,
    val_loader: Any,
    precision: str,
    predictions: Predictions,
    checkpoint: Path | None,
    max_batches: int = 0,
) -> dict[str, Any]:
    """Fit T on the validation logits of ``model``, store it in ``checkpoint`` (None: not
    written, e.g. on a rank that does not write), and return summary.json's ``calibration``
    block with the test split's figures before and after (``predictions``: the test pass)."""
    logits, labels = validation_logits(model, val_loader, precision, max_batches)
    temperature = fit_temperature(logits, labels)
    if checkpoint is not None:
        store_temperature(checkpoint, temperature)
    assert predictions.logits is not None
    targets = predictions.labels.numpy()
    after = scaled_probabilities(predictions.logits.double().numpy(), temperature, False)
    before = calibration_figures(targets, predictions.probabilities.double().numpy())
    return calibration_record(
        TEMPERATURE, temperature, "test", before, calibration_figures(targets, after)
    )


def check_target(runs: Sequence[Any], members: Sequence[Any], checkpoint: str) -> None:
    """``eval calibrate=temperature`` calibrates one run directory's best checkpoint (what
    summary.json describes) of a single-label run; anything else is one line."""
    if len(members) != 1:
        raise UserError(
            "calibrate=temperature calibrates one run at a time: give run=<run dir>, "
            "not an ensemble"
        )
    if members[0].run_dir is None:
        raise UserError(
            f"calibrate=temperature needs a run directory (it updates its best.pt and "
            f"summary.json), not the checkpoint file {runs[0]}"
        )
    if checkpoint != "best":
        raise UserError(
            f"calibrate=temperature calibrates the best checkpoint (the one summary.json "
            f"describes), not checkpoint={checkpoint}"
        )
    check_task(members[0].task)


def calibrate_loaded(loaded: Any, val_images: Any) -> float:
    """Fit T on ``val_images`` (the run's validation split, materialised) by a finished
    run's model, store it in its checkpoint and in ``loaded``'s spec (so that what follows
    applies it); returns T."""
    if len(val_images) == 0:
        raise UserError("cannot fit a temperature: the run's validation split is empty")
    logits = predict_logits(
        loaded.model, val_images.images, loaded.spec["mean"], loaded.spec["std"]
    )
    temperature = fit_temperature(logits, val_images.labels.numpy())
    store_temperature(loaded.checkpoint, temperature)
    loaded.spec["temperature"] = temperature
    return temperature


def record_in_summary(run_dir: Path, block: dict[str, Any]) -> None:
    """Put ``block`` (a ``calibration`` record) into the run's summary.json."""
    folder = RunFolder(run_dir)
    if not folder.summary_json.is_file():
        return
    summary = folder.read_summary()
    summary.calibration = block
    summary.write(folder.summary_json)
