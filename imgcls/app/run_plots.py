"""What is written at the end of every training run: ``<run>/plots/`` and test_metrics.json.

Nothing here runs the model: the figures and test_metrics.json are drawn from the
probabilities of the run's one test evaluation (:func:`imgcls.train.engine.evaluate_and_predict`),
so they agree with the test metrics in summary.json, test-time augmentation included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgcls.app.cam import write_run_cam
from imgcls.base.atomic import write_json
from imgcls.base.errors import one_line
from imgcls.base.record import RunFolder
from imgcls.data.splits import SplitSet
from imgcls.evaluate import plots
from imgcls.evaluate.metrics import compute_metrics, default_topk
from imgcls.evaluate.multilabel import (
    multilabel_metrics,
    precision_recall_curves,
    predict_labels,
    thresholds_from_spec,
)
from imgcls.train.engine import Predictions

logger = logging.getLogger("imgcls")


def write_run_plots(
    run_dir: RunFolder | Path,
    predictions: Predictions,
    test: SplitSet,
    classes: Sequence[str],
    tta: Sequence[str] = (),
    thresholds: Sequence[float] | None = None,
    figures: bool = True,
) -> list[Path]:
    """curves.png, confusion_matrix.png, predictions.png and cam.png (Grad-CAM from the best
    checkpoint, :mod:`imgcls.app.cam`) for a finished run, and test_metrics.json: the test
    split's per-class precision, recall and F1 and the confusion matrix.

    A multi-label run (multi-hot labels) gets curves.png, pr_curves.png (a precision-recall
    curve per label), a predictions.png of label sets and a test_metrics.json of
    :func:`imgcls.evaluate.multilabel.multilabel_metrics` at its tuned ``thresholds``
    (a per-label table); a confusion matrix does not apply.

    ``predictions`` are those the test metrics in summary.json were computed from (the best
    checkpoint, with the test-time augmentation ``tta`` names); ``test`` is the split they
    came from, read only for the few images predictions.png shows. A problem is logged as a
    warning and never fails a run whose model and metrics are already saved.

    ``figures=False`` (``trainer.plots=false``) writes test_metrics.json alone: drawing the
    figures costs most of the end of a small run (a smoke run in CI, a test).
    """
    started = time.perf_counter()
    run = RunFolder.of(run_dir)
    written: list[Path] = []
    try:
        from sklearn.metrics import confusion_matrix

        classes = list(classes)
        probabilities = predictions.probabilities.numpy()
        targets = predictions.labels.numpy()
        multilabel = targets.ndim == 2
        if multilabel:
            _write_multilabel_test_metrics(run, targets, probabilities, classes, tta, thresholds)
        else:
            _write_test_metrics(run, targets, probabilities, classes, tta)
        if not figures:
            return written
        if run.metrics_csv.is_file():
            curves = plots.read_metrics(run.metrics_csv)
            written.append(plots.plot_curves(curves, run.curves_png, run.path.name))
        if multilabel:
            written += _multilabel_plots(run, targets, probabilities, test, classes, thresholds)
        else:
            labels = np.arange(len(classes))
            matrix = confusion_matrix(targets, probabilities.argmax(1), labels=labels)
            written.append(plots.plot_confusion_matrix(matrix, classes, run.confusion_matrix_png))
            shown = plots.prediction_slots(targets, probabilities.argmax(1))
            images = {int(i): test.read(int(i)).cpu().numpy() for i in shown}
            written.append(
                plots.plot_predictions(images, targets, probabilities, classes, run.predictions_png)
            )
        cam = write_run_cam(run, predictions, test)  # never raises: a warning line at most
        written += [cam] if cam is not None else []
    except Exception as error:  # noqa: BLE001 - figures are a convenience, the run is complete
        logger.warning(f"could not write the plots: {one_line(error, typed=True)}")
        return written
    logger.info(f"plots: {run.plots} ({time.perf_counter() - started:.1f}s)")
    return written


def _write_test_metrics(
    run: RunFolder,
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    tta: Sequence[str],
) -> None:
    """test_metrics.json: the per-class figures and confusion matrix the report shows."""
    try:
        metrics = compute_metrics(targets, probabilities, classes, default_topk(len(classes)))
        metrics.pop("classification_report", None)
        record = {
            "split": "test",
            "checkpoint": "best",
            "tta": ",".join(tta) or "none",
            "classes": classes,
        }
        write_json(run.test_metrics_json, {**record, **metrics})
    except Exception as error:  # noqa: BLE001 - the report shows them as missing
        name = run.test_metrics_json.name
        logger.warning(f"could not write {name}: {one_line(error, typed=True)}")


def _write_multilabel_test_metrics(
    run: RunFolder,
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    tta: Sequence[str],
    thresholds: Sequence[float] | None,
) -> None:
    """test_metrics.json of a multi-label run: mAP, F1s and the per-label table at the
    thresholds summary.json records (0.5 where none were tuned)."""
    try:
        if thresholds is None:
            thresholds = thresholds_from_spec(None, len(classes)).tolist()
        metrics = multilabel_metrics(targets, probabilities, classes, thresholds)
        record = {
            "split": "test",
            "checkpoint": "best",
            "tta": ",".join(tta) or "none",
            "task": "multilabel",
            "classes": classes,
            "thresholds": [float(t) for t in thresholds],
        }
        write_json(run.test_metrics_json, {**record, **metrics})
    except Exception as error:  # noqa: BLE001 - the report shows them as missing
        name = run.test_metrics_json.name
        logger.warning(f"could not write {name}: {one_line(error, typed=True)}")


def _multilabel_plots(
    run: RunFolder,
    targets: np.ndarray,
    probabilities: np.ndarray,
    test: SplitSet,
    classes: list[str],
    thresholds: Sequence[float] | None,
) -> list[Path]:
    """pr_curves.png and predictions.png (true and predicted label sets at ``thresholds``)."""
    curves = precision_recall_curves(targets, probabilities, classes)
    left_out = len(classes) - len(curves)
    written = [plots.plot_pr_curves(curves, run.pr_curves_png, run.path.name, left_out)]
    predicted = predict_labels(probabilities, thresholds)
    shown = plots.multilabel_prediction_slots(targets, predicted)
    images = {int(i): test.read(int(i)).cpu().numpy() for i in shown}
    written.append(
        plots.plot_multilabel_predictions(
            images, targets, probabilities, predicted, classes, run.predictions_png
        )
    )
    return written


def write_reliability_plot(
    run_dir: RunFolder | Path,
    predictions: Predictions,
    calibration: dict | None = None,
) -> Path | None:
    """``plots/reliability.png`` of the test split: the run's probabilities, and beside them
    the temperature-scaled ones when the run was calibrated (``calibration``: summary.json's
    block). A problem is a warning; the run is complete without the figure."""
    from imgcls.evaluate.calibration import calibration_figures, reliability, scaled_probabilities

    run = RunFolder.of(run_dir)
    try:
        targets = predictions.labels.numpy()
        probabilities = predictions.probabilities.double().numpy()
        panels = [
            (
                "test split" if calibration is None else "test split, before scaling",
                reliability(targets, probabilities).to_dict(),
                calibration_figures(targets, probabilities),
            )
        ]
        if calibration is not None and predictions.logits is not None:
            t = float(calibration["temperature"])
            scaled = scaled_probabilities(predictions.logits.double().numpy(), t, False)
            panels.append(
                (
                    f"after temperature scaling (T = {t:.3f})",
                    reliability(targets, scaled).to_dict(),
                    calibration_figures(targets, scaled),
                )
            )
        return plots.plot_reliability(panels, run.reliability_png)
    except Exception as error:  # noqa: BLE001 - a figure never fails a finished run
        logger.warning(f"could not write {run.reliability_png.name}: {one_line(error, typed=True)}")
        return None
