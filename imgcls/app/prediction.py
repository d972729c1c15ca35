"""Classifying image files, the part that needs no torch: finding and preparing the images,
ranking the classes and writing ``predictions.csv`` and ``predictions.json``.

``imgcls predict run=<dir>`` (a PyTorch model) and ``imgcls predict model=<file.onnx>``
(ONNX Runtime, see :mod:`imgcls.app.onnx_predict`) share it, so both give an image the same
preprocessing and write the same files. A single-label model ranks the classes (top-k); a
multi-label model gives each image the set of labels whose probability reaches that label's
threshold (:func:`imgcls.evaluate.multilabel.predict_labels`, the rule ``eval`` applies).
Nothing here imports torch, at any depth.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from imgcls.base.errors import UnreadableImageError, UserError, one_line
from imgcls.base.folders import check_output_dir, claim_dir, writing_into, written_by_imgcls
from imgcls.base.images import open_image
from imgcls.base.runs import atomic_write
from imgcls.evaluate.multilabel import SET_SEPARATOR, predict_labels, threshold_map

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# How a file becomes the model's input: what export.json's "preprocessing" records.
RESIZE = "bilinear"  # Pillow's resize to the training size (height x width), aspect not kept
# imgcls.data.targets' task names (that module imports torch, which this one must not).
MULTICLASS, MULTILABEL = "multiclass", "multilabel"


class Predictions(NamedTuple):
    """What ``imgcls predict`` wrote: the output folder, one record per classified image, and
    the files skipped as unreadable, each with the reason."""

    out_dir: Path
    records: list[dict[str, Any]]
    skipped: list[tuple[str, str]]


def find_images(pattern: str) -> list[Path]:
    """Image files named by a file, a folder (recursively) or a glob pattern, sorted."""
    path = Path(pattern).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        candidates = path.rglob("*")
    else:
        candidates = (Path(p) for p in glob.glob(str(path), recursive=True))
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: Path, channels: int, size: Sequence[int]) -> np.ndarray:
    """A file as a uint8 (C, H, W) array in the run's channels and size.

    Raises :class:`UnreadableImageError` for anything Pillow refuses (decompression bombs
    included)."""
    from PIL import Image

    if channels not in MODES:
        raise UserError(f"cannot prepare images for a {channels}-channel model: use 1, 3 or 4")
    converted = open_image(path, MODES[channels])
    height, width = int(size[0]), int(size[1])
    resized = converted.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def read_images(
    images: str, channels: int, size: Sequence[int]
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """The readable images at ``images`` prepared for the model (names and one uint8
    (N, C, H, W) array), and the files skipped with the reason; none readable is a UserError."""
    files = find_images(images)
    if not files:
        raise UserError(
            f"no images found at images={images}: give a file, a folder or a glob of "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    arrays, names, skipped = [], [], []
    for file in files:
        try:
            arrays.append(load_image(file, int(channels), size))
            names.append(str(file))
        except UnreadableImageError as error:
            cause = error.__cause__ or error
            reason = one_line(cause)
            skipped.append((str(file), reason))
    if not arrays:
        first, reason = skipped[0]
        raise UserError(
            f"none of the {len(files)} files at images={images} could be read as an image "
            f"(e.g. {first}: {reason})"
        )
    for file, reason in skipped:  # named, and the rest is still classified
        print(f"imgcls: skipped {file}: cannot read it as an image ({reason})", file=sys.stderr)
    return names, np.stack(arrays), skipped


def top_k_records(
    names: list[str], probabilities: np.ndarray, classes: list[str], topk: int
) -> list[dict[str, Any]]:
    """One record per image: the prediction, its probability and the ``topk`` classes."""
    k = max(1, min(topk, len(classes)))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        {
            "file": name,
            "prediction": classes[int(top[0])],
            "probability": float(probs[top[0]]),
            "top": [{"class": classes[int(c)], "probability": float(probs[c])} for c in top],
        }
        for name, probs, top in zip(names, probabilities, order, strict=True)
    ]


def label_set_records(
    names: list[str], probabilities: np.ndarray, classes: list[str], thresholds: np.ndarray
) -> list[dict[str, Any]]:
    """One record per image of a multi-label model: ``labels``, the classes whose probability
    reaches their threshold (in class order, with their probabilities), ``prediction``, the
    same set as names joined by ``|`` (empty for none), and every class's ``probabilities``."""
    chosen = predict_labels(probabilities, thresholds)
    records = []
    for name, probs, row in zip(names, probabilities, chosen, strict=True):
        picked = [int(c) for c in np.flatnonzero(row)]
        records.append(
            {
                "file": name,
                "prediction": SET_SEPARATOR.join(classes[c] for c in picked),
                "labels": [{"class": classes[c], "probability": float(probs[c])} for c in picked],
                "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
            }
        )
    return records


def prediction_source(
    classes: list[str], thresholds: np.ndarray | None, **where: Any
) -> dict[str, Any]:
    """predictions.json's head: what classified the images (``where``), the classes, and for
    a multi-label model its task and the thresholds it applied ({class: threshold})."""
    source: dict[str, Any] = {**where, "classes": list(classes)}
    if thresholds is not None:
        source["task"] = MULTILABEL
        source["thresholds"] = threshold_map(classes, thresholds)
    return source


def is_predict_output(folder: Path) -> bool:
    """True for a folder holding earlier predictions (predictions.json, as imgcls writes it),
    which new predictions may replace."""
    return written_by_imgcls(folder / "predictions.json", b'"classes": [')


def output_folder(out: str | Path | None, beside: Path) -> Path:
    """``out`` (checked: new, empty or earlier predictions; made when the files are
    written), or a new ``<beside>/predict/<date>_<time>/``."""
    if out is not None:
        return check_output_dir(out, "out", is_predict_output)
    base = beside / "predict" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path(claim_dir(str(base)))


def write_predictions(
    out_dir: Path,
    records: list[dict[str, Any]],
    skipped: list[tuple[str, str]],
    source: dict[str, Any],
) -> None:
    """predictions.csv (one row per image) and predictions.json (``source``: what classified
    the images, then the classes, the records and the skipped files), each written atomically.

    Single-label rows hold the prediction, its probability and the top-k classes; multi-label
    rows (``source["task"]`` is multilabel) the label set and one ``probability_<class>``
    column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if source.get("task") == MULTILABEL:
        classes = list(source["classes"])
        writer.writerow(["file", "prediction", *(f"probability_{c}" for c in classes)])
        for record in records:
            probs = record["probabilities"]
            writer.writerow([record["file"], record["prediction"], *(probs[c] for c in classes)])
    else:
        k = len(records[0]["top"]) if records else 0
        header = ["file", "prediction", "probability"]
        for i in range(1, k + 1):
            header += [f"top{i}_class", f"top{i}_probability"]
        writer.writerow(header)
        for record in records:
            row: list[Any] = [record["file"], record["prediction"], record["probability"]]
            for entry in record["top"]:
                row += [entry["class"], entry["probability"]]
            writer.writerow(row)
    document = {
        **source,
        "predictions": records,
        "skipped": [{"file": f, "error": e} for f, e in skipped],
    }
    with writing_into(out_dir) as written:
        written.append(out_dir / "predictions.csv")
        atomic_write(written[-1], lambda f: f.write(buffer.getvalue()))
        written.append(out_dir / "predictions.json")
        atomic_write(written[-1], lambda f: json.dump(document, f, indent=2))
