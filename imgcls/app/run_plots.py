"""The figures written at the end of every training run into ``<run>/plots/``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from imgcls.app.inference import predict_probabilities
from imgcls.data.splits import ImageSet
from imgcls.evaluate import plots

logger = logging.getLogger("imgcls")

RUN_PLOTS = ("curves.png", "confusion_matrix.png", "predictions.png")


def write_run_plots(
    run_dir: Path, model: nn.Module, test: ImageSet, spec: dict[str, Any]
) -> list[Path]:
    """curves.png, confusion_matrix.png and predictions.png for a finished run.

    Runs once, after the test evaluation; a plotting problem is logged as a warning and never
    fails a run whose model and metrics are already saved.
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
        matrix = confusion_matrix(targets, probabilities.argmax(1), labels=np.arange(len(classes)))
        written.append(plots.plot_confusion_matrix(matrix, classes, folder / RUN_PLOTS[1]))
        written.append(
            plots.plot_predictions(
                test.images.cpu().numpy(), targets, probabilities, classes, folder / RUN_PLOTS[2]
            )
        )
    except Exception as error:  # noqa: BLE001 - figures are a convenience, the run is complete
        logger.warning(f"could not write the plots: {type(error).__name__}: {error}")
        return written
    logger.info(f"plots: {folder} ({time.perf_counter() - started:.1f}s)")
    return written
