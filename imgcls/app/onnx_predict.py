"""``imgcls predict model=<file.onnx>``: classify images with ONNX Runtime, without PyTorch.

The model's preprocessing comes from the ``export.json`` that ``imgcls export`` wrote beside
it (channels, image size, resize rule, mean and std; for a multi-label model, whose graph
outputs sigmoid probabilities, also the task and the per-label thresholds; a calibrated
run's graph already divides its logits by the temperature export.json records), and the rest —
finding and decoding the images, ranking the classes or choosing the label sets, the output
files — is :mod:`imgcls.app.prediction`, the same code ``imgcls predict run=`` uses. This module, and everything it imports, never imports
torch or torchvision (an import-linter contract and a test check it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgcls.app.prediction import (
    MODES,
    MULTICLASS,
    MULTILABEL,
    RESIZE,
    Predictions,
    label_set_records,
    output_folder,
    prediction_source,
    read_images,
    top_k_records,
    write_predictions,
)
from imgcls.base.errors import UserError, one_line
from imgcls.base.extras import require
from imgcls.evaluate.calibration import temperature_from_spec
from imgcls.evaluate.multilabel import thresholds_from_spec

EXPORT_FILE = "export.json"
BATCH = 256


@dataclass
class OnnxModel:
    """An exported model and what its export.json says about feeding it."""

    path: Path
    info: dict[str, Any]
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    classes: list[str]
    channels: int
    image_size: tuple[int, int]
    mean: np.ndarray  # (1, C, 1, 1) float32
    std: np.ndarray
    task: str = MULTICLASS
    thresholds: np.ndarray | None = None  # (classes,) for a multi-label model

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """The graph's outputs (N, classes) for uint8 (N, C, H, W) images, in batches of
        ``BATCH``: logits, or sigmoid probabilities for a multi-label model."""
        outputs = []
        for start in range(0, images.shape[0], BATCH):
            batch = images[start : start + BATCH].astype(np.float32) / np.float32(255.0)
            batch = (batch - self.mean) / self.std
            outputs.append(self.session.run(None, {self.input_name: batch})[0])
        return np.concatenate(outputs).astype(np.float32)

    def probabilities(self, images: np.ndarray, tta: str = "none") -> np.ndarray:
        """Probabilities (N, classes): a softmax of the logits, or a multi-label graph's own
        sigmoid outputs; ``tta=flip`` averages with the mirror image."""
        probs = self._probabilities(images)
        if tta == "flip":
            probs = (probs + self._probabilities(np.ascontiguousarray(images[..., ::-1]))) / 2
        return probs

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        outputs = self.outputs(images)
        return outputs.astype(np.float64) if self.task == MULTILABEL else softmax(outputs)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: the row maximum is subtracted first)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def read_export_info(model: Path) -> dict[str, Any]:
    """The export.json beside ``model``, checked for what prediction needs."""
    file = model.parent / EXPORT_FILE
    if not file.is_file():
        raise UserError(
            f"no {EXPORT_FILE} beside {model}: predict model= needs the preprocessing that "
            "'imgcls export' writes there (keep the two files together)"
        )
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{file} is unreadable or not JSON ({one_line(error)})") from error
    required = ("classes", "channels", "image_size", "mean", "std", "resize")
    missing = [k for k in required if not isinstance(info, dict) or k not in info]
    if missing:
        raise UserError(f"{file} lacks {', '.join(missing)}: it was not written by imgcls export")
    channels, size = info["channels"], info["image_size"]
    if (
        not isinstance(info["classes"], list)
        or channels not in MODES
        or not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size))
        or not all(isinstance(info[k], list) and len(info[k]) == channels for k in ("mean", "std"))
    ):
        raise UserError(f"{file} has classes, channels, image_size, mean or std of the wrong form")
    resize = info["resize"].get("interpolation") if isinstance(info["resize"], dict) else None
    if resize != RESIZE:
        raise UserError(f"{file} asks for a '{resize}' resize; imgcls predicts with {RESIZE} only")
    task = info.get("task", MULTICLASS)  # exports older than multi-label runs have none
    if task not in (MULTICLASS, MULTILABEL):
        raise UserError(f"{file} has task={task!r}: expected {MULTICLASS} or {MULTILABEL}")
    if info.get("file") not in (None, model.name):
        raise UserError(
            f"{file} describes {info['file']}, not {model.name}: keep each exported model in "
            "its own folder with its export.json"
        )
    return info


def providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime execution providers for ``device=auto|cpu|cuda``."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in available:
            raise UserError(
                f"device={device}: this onnxruntime has no CUDA provider (it has "
                f"{', '.join(available)}); install onnxruntime-gpu or use device=cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise UserError(f"device={device} is not available for ONNX models: use auto, cpu or cuda")


def load_onnx(model: str | Path, device: str = "auto") -> OnnxModel:
    """An ONNX Runtime session for ``model`` and its export.json."""
    path = Path(model)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if path.suffix.lower() != ".onnx":
        raise UserError(
            f"model={path} is not an ONNX file (.onnx): predict model= runs the ONNX files of "
            "'imgcls export'; for a .pt or .pt2 export use predict run=<run dir>"
        )
    info = read_export_info(path)
    ort = require("onnxruntime", "predict model=<file.onnx>")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no provider warnings on the console
    chosen = providers(device, list(ort.get_available_providers()))
    try:
        session = ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as error:  # onnxruntime's errors are its own classes
        reason = one_line(error, limit=300)
        raise UserError(f"{path} is not a valid ONNX model ({reason})") from error
    channels = int(info["channels"])
    height, width = (int(v) for v in info["image_size"])
    expected = [channels, height, width]
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4 or [v for v in shape[1:] if isinstance(v, int)] != expected:
        raise UserError(
            f"{path} takes inputs of shape {shape} but its {EXPORT_FILE} says "
            f"{channels}x{height}x{width}: the two files do not belong together"
        )
    task = str(info.get("task", MULTICLASS))
    classes = [str(c) for c in info["classes"]]
    thresholds = None
    if task == MULTILABEL:  # stored with the task by imgcls export; 0.5 each when absent
        thresholds = thresholds_from_spec(info, len(classes), str(path.parent / EXPORT_FILE))
    return OnnxModel(
        path=path,
        info=info,
        session=session,
        input_name=session.get_inputs()[0].name,
        classes=classes,
        channels=channels,
        image_size=(height, width),
        mean=np.asarray(info["mean"], dtype=np.float32).reshape(1, -1, 1, 1),
        std=np.asarray(info["std"], dtype=np.float32).reshape(1, -1, 1, 1),
        task=task,
        thresholds=thresholds,
    )


def predict_onnx(
    model: str | Path,
    images: str,
    topk: int = 5,
    tta: str = "none",
    out: str | Path | None = None,
    device: str = "auto",
) -> Predictions:
    """Classify the images; returns (output folder, one record per image, skipped files).

    A multi-label model gives each image its label set at export.json's thresholds, as
    ``predict run=`` does. The output folder defaults to ``<model folder>/predict/<date>_<time>/``."""
    loaded = load_onnx(model, device)
    names, arrays, skipped = read_images(images, loaded.channels, loaded.image_size)
    probabilities = loaded.probabilities(arrays, tta)
    if loaded.thresholds is None:
        records = top_k_records(names, probabilities, loaded.classes, topk)
    else:
        records = label_set_records(names, probabilities, loaded.classes, loaded.thresholds)
    out_dir = output_folder(out, loaded.path.parent)
    source = loaded.info.get("source") or {}
    where = {
        "model": str(loaded.path),
        "run": source.get("run"),
        "checkpoint": source.get("checkpoint_file"),
        "temperature": temperature_from_spec(loaded.info, str(loaded.path.parent / EXPORT_FILE)),
    }
    write_predictions(
        out_dir, records, skipped, prediction_source(loaded.classes, loaded.thresholds, **where)
    )
    return Predictions(out_dir, records, skipped)
