"""Classifying image files with a run's PyTorch model or an exported ONNX file (``imgcls
predict``).

``model=`` runs a model written by ``imgcls export format=onnx`` with ONNX Runtime and the
preprocessing in its export.json, and imports neither torch nor torchvision: this module
imports torch only inside :func:`predict_with_run`, through :mod:`imgcls.app.inference`.
"""

from __future__ import annotations

from pathlib import Path

from imgcls.app.onnx_predict import predict_onnx
from imgcls.app.prediction import (
    Predictions,
    is_predict_output,
    label_set_records,
    output_folder,
    prediction_source,
    read_images,
    top_k_records,
    write_predictions,
)
from imgcls.base.errors import UserError, unknown_choice
from imgcls.base.folders import check_output_dir

TTA = ("none", "flip")


def predict(
    images: str | None = None,
    run: str | Path | None = None,
    model: str | Path | None = None,
    checkpoint: str | None = None,
    topk: int = 5,
    tta: str = "none",
    out: str | Path | None = None,
    device: str = "auto",
) -> Predictions:
    """Classify ``images`` (a file, a folder or a glob) with ``run`` (PyTorch) or ``model``
    (an ONNX file; no torch import), after checking the arguments together."""
    if run is not None and model is not None:
        raise UserError(
            "imgcls predict takes run=<run dir> or model=<file.onnx>, not both: run= uses "
            "PyTorch, model= an exported ONNX file"
        )
    source = "model" if model is not None else "run"
    for key, value in ((source, model if source == "model" else run), ("images", images)):
        if value is None:
            raise UserError(
                f"imgcls predict needs {key}=<...>: e.g. run=outputs/... images=pics/ "
                "(or model=<file.onnx> images=pics/)"
            )
    if model is not None and checkpoint is not None:
        raise UserError(
            "checkpoint= goes with run=: an exported model holds the weights of the checkpoint "
            "it was exported from (see its export.json)"
        )
    if topk < 1:
        raise UserError(f"topk={topk} is invalid: list at least 1 class per image")
    if tta not in TTA:
        raise unknown_choice("tta", tta, TTA)
    if out is not None:  # before any work: new, empty or earlier predictions
        check_output_dir(out, "out", is_predict_output)
    if model is not None:
        return predict_onnx(model, str(images), topk, tta, out, device)
    return predict_with_run(str(run), str(images), checkpoint or "best", topk, tta, out, device)


def predict_with_run(
    run: str | Path,
    images: str,
    checkpoint: str = "best",
    topk: int = 5,
    tta: str = "none",
    out: str | Path | None = None,
    device: str = "auto",
) -> Predictions:
    """Classify the images with a run's PyTorch model; returns (output folder, one record
    per image, skipped files). A multi-label run gives each image its label set at the
    checkpoint's thresholds (``topk`` does not apply)."""
    from imgcls.app.inference import classify, load_run  # torch: only for run=

    loaded = load_run(run, checkpoint, device)
    names, arrays, skipped = read_images(
        images, int(loaded.spec["channels"]), loaded.spec["image_size"]
    )
    probabilities = classify(loaded, arrays, tta)
    thresholds = loaded.thresholds
    if thresholds is None:
        records = top_k_records(names, probabilities, loaded.classes, topk)
    else:
        records = label_set_records(names, probabilities, loaded.classes, thresholds)
    out_dir = output_folder(out, loaded.run_dir or loaded.checkpoint.parent)
    source = prediction_source(
        loaded.classes,
        thresholds,
        run=str(loaded.run_dir or loaded.checkpoint),
        checkpoint=str(loaded.checkpoint),
        temperature=loaded.temperature,  # the logits were divided by it (1.0: not calibrated)
    )
    write_predictions(out_dir, records, skipped, source)
    return Predictions(out_dir, records, skipped)
