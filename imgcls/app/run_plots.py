"""What is written at the end of every training run: ``<run>/plots/`` and test_metrics.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from imgcls.app.inference import predict_probabilities
from imgcls.base.errors import one_line
from imgcls.base.runs import write_json
from imgcls.data.splits import ImageSet
from imgcls.evaluate import plots
from imgcls.evaluate.html_report import TEST_METRICS_FILE
from imgcls.evaluate.metrics import compute_metrics, default_topk

logger = logging.getLogger("imgcls")

RUN_PLOTS = ("curves.png", "confusion_matrix.png", "predictions.png")


def write_run_plots(
    run_dir: Path, model: nn.Module, test: ImageSet, spec: dict[str, Any]
) -> list[Path]:
    """curves.png, confusion_matrix.png and predictions.png for a finished run, and
    test_metrics.json: the test split's per-class precision, recall and F1 and the confusion
    matrix (from ``model`` as it is, the best checkpoint, without test-time augmentation).

    Runs once, after the test evaluation; a problem is logged as a warning and never fails a
    run whose model and metrics are already saved.
    """
    started = time.perf_counter()
    folder = Path(run_dir) / "plots"
    written: list[Path] = []
    try:
        from sklearn.metrics import confusion_matrix

        classes = list(spec["classes"])
        metrics_csv = Path(run_dir) / "metrics.csv"
        if metrics_csv.is_file():
            title = f"{Path(run_dir).name}"
            written.append(
                plots.plot_curves(plots.read_metrics(metrics_csv), folder / RUN_PLOTS[0], title)
            )
        probabilities = predict_probabilities(model, test.images, spec["mean"], spec["std"]).numpy()
        targets = test.labels.cpu().numpy()
        _write_test_metrics(Path(run_dir), targets, probabilities, classes)
        matrix = confusion_matrix(targets, probabilities.argmax(1), labels=np.arange(len(classes)))
        written.append(plots.plot_confusion_matrix(matrix, classes, folder / RUN_PLOTS[1]))
        written.append(
            plots.plot_predictions(
                test.images.cpu().numpy(), targets, probabilities, classes, folder / RUN_PLOTS[2]
            )
        )
    except Exception as error:  # noqa: BLE001 - figures are a convenience, the run is complete
        logger.warning(f"could not write the plots: {one_line(error, typed=True)}")
        return written
    logger.info(f"plots: {folder} ({time.perf_counter() - started:.1f}s)")
    return written


def _write_test_metrics(
    run_dir: Path, targets: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> None:
    try:
        metrics = compute_metrics(targets, probabilities, classes, default_topk(len(classes)))
        metrics.pop("classification_report", None)
        record = {"split": "test", "checkpoint": "best", "tta": "none", "classes": classes}
        write_json(run_dir / TEST_METRICS_FILE, {**record, **metrics})
    except Exception as error:  # noqa: BLE001 - the report shows them as missing
        logger.warning(f"could not write {TEST_METRICS_FILE}: {one_line(error, typed=True)}")
