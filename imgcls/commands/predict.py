"""``imgcls predict run=<dir> images=<file|folder|glob>``: classify new image files.

Each image gets the run's own preprocessing: converted to its channel count (PIL modes L,
RGB or RGBA), resized to its training size (bilinear), normalised with its mean and std.
Unreadable files are reported by name and skipped; the rest are still classified.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgcls.app.inference import load_run, predict_probabilities
from imgcls.base.errors import UnreadableImageError, UserError
from imgcls.base.folders import claim_dir, ensure_dir
from imgcls.base.runs import atomic_write
from imgcls.commands.args import parse_arguments, usage_lines
from imgcls.data.files import open_image

logger = logging.getLogger("imgcls")

PREDICT_KEYS = {
    "run": "a run directory (or a checkpoint file)",
    "images": "an image file, a folder (searched recursively) or a glob such as 'pics/*.png'",
    "checkpoint": "best (default), last or a checkpoint file",
    "topk": "how many classes to list per image (default 5, at most the class count)",
    "tta": "none (default) or flip",
    "out": "output folder (default <run>/predict/<date>_<time>/)",
    "device": "auto (default), cpu, cuda, cuda:N or mps",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


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


def predict_images(
    run: str | Path,
    images: str,
    checkpoint: str = "best",
    topk: int = 5,
    tta: str = "none",
    out: str | Path | None = None,
    device: str = "auto",
) -> tuple[Path, list[dict[str, Any]], list[tuple[str, str]]]:
    """Classify the images; returns (output folder, one record per image, skipped files)."""

    loaded = load_run(run, checkpoint, device)
    names, arrays, skipped = read_images(images, loaded.spec)
    batch = torch.from_numpy(np.stack(arrays))
    probabilities = predict_probabilities(
        loaded.model, batch, loaded.spec["mean"], loaded.spec["std"], tta=tta
    ).numpy()
    records = top_k_records(names, probabilities, loaded.classes, topk)
    if out is None:
        base = (loaded.run_dir or loaded.checkpoint.parent) / "predict"
        out_dir = Path(claim_dir(str(base / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))))
    else:
        out_dir = ensure_dir(out, "output folder")
    write_predictions(out_dir, records, skipped, loaded)
    return out_dir, records, skipped


def read_images(
    images: str, spec: dict[str, Any]
) -> tuple[list[str], list[np.ndarray], list[tuple[str, str]]]:
    """The readable images at ``images`` prepared for the model (names and CxHxW uint8
    arrays), and the files skipped with the reason; none readable is a UserError."""
    files = find_images(images)
    if not files:
        raise UserError(
            f"no images found at images={images}: give a file, a folder or a glob of "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    channels, size = int(spec["channels"]), spec["image_size"]
    arrays, names, skipped = [], [], []
    for file in files:
        try:
            arrays.append(load_image(file, channels, size))
            names.append(str(file))
        except UnreadableImageError as error:
            cause = error.__cause__ or error
            reason = " ".join(str(cause).split()) or type(cause).__name__
            skipped.append((str(file), reason))
    if not arrays:
        first, reason = skipped[0]
        raise UserError(
            f"none of the {len(files)} files at images={images} could be read as an image "
            f"(e.g. {first}: {reason})"
        )
    for file, reason in skipped:  # named, and the rest is still classified
        print(f"imgcls: skipped {file}: cannot read it as an image ({reason})", file=sys.stderr)
    return names, arrays, skipped


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


def write_predictions(
    out_dir: Path, records: list[dict[str, Any]], skipped: list[tuple[str, str]], loaded: Any
) -> None:
    """predictions.csv (one row per image, top-k columns) and predictions.json, atomically."""
    k = len(records[0]["top"]) if records else 0
    header = ["file", "prediction", "probability"]
    for i in range(1, k + 1):
        header += [f"top{i}_class", f"top{i}_probability"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for record in records:
        row: list[Any] = [record["file"], record["prediction"], record["probability"]]
        for entry in record["top"]:
            row += [entry["class"], entry["probability"]]
        writer.writerow(row)
    atomic_write(out_dir / "predictions.csv", lambda f: f.write(buffer.getvalue()))
    document = {
        "run": str(loaded.run_dir or loaded.checkpoint),
        "checkpoint": str(loaded.checkpoint),
        "classes": loaded.classes,
        "predictions": records,
        "skipped": [{"file": f, "error": e} for f, e in skipped],
    }
    atomic_write(out_dir / "predictions.json", lambda f: json.dump(document, f, indent=2))


def run_predict(args: Sequence[str]) -> int:
    """``imgcls predict run=<dir> images=<file|folder|glob> [topk=5] [tta=flip] [out=]``."""
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: imgcls predict run=<run dir> images=<path> [key=value ...]\n\nkeys:\n"
            + usage_lines(PREDICT_KEYS)
        )
        return 0
    options = parse_arguments(args, PREDICT_KEYS, "predict")
    for key in ("run", "images"):
        if key not in options or isinstance(options[key], list):
            raise UserError(f"imgcls predict needs {key}=<...>: e.g. run=outputs/... images=pics/")
    try:
        topk = int(str(options.get("topk", 5)))
    except ValueError as error:
        raise UserError(f"topk={options['topk']} is invalid: expected an integer") from error
    if topk < 1:
        raise UserError(f"topk={topk} is invalid: list at least 1 class per image")
    tta = str(options.get("tta", "none"))
    if tta not in ("none", "flip"):
        raise UserError(f"unknown tta '{tta}'; available: flip, none")
    out_dir, records, skipped = predict_images(
        str(options["run"]),
        str(options["images"]),
        str(options.get("checkpoint", "best")),
        topk,
        tta,
        options.get("out"),
        str(options.get("device", "auto")),  # type: ignore[arg-type]
    )
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "prediction", "probability", "top classes", box=None)
    for record in records:
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in record["top"][1:])
        table.add_row(
            Path(record["file"]).name, record["prediction"], f"{record['probability']:.3f}", top
        )
    Console(width=140).print(table)
    print(f"{len(records)} images classified, {len(skipped)} skipped; results: {out_dir}")
    return 0
