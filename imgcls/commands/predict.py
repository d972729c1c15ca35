"""``imgcls predict run=<dir>|model=<file.onnx> images=<file|folder|glob>``: classify image files.

Each image gets the model's own preprocessing: converted to its channel count (PIL modes L,
RGB or RGBA), resized to its training size (bilinear), normalised with its mean and std.
Unreadable files are reported by name and skipped; the rest are still classified.

``run=`` loads a run's checkpoint with PyTorch; ``model=`` runs a model written by
``imgcls export format=onnx`` with ONNX Runtime and imports no torch (see
:mod:`imgcls.app.predict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgcls.app.predict import predict
from imgcls.config.arguments import Grammar, Key, Kind, wants_help

PREDICT = Grammar(
    "predict",
    {
        "run": Key("a run directory (or a checkpoint file)"),
        "model": Key(
            "instead of run=: an ONNX file written by imgcls export (runs without PyTorch)"
        ),
        "images": Key(
            "an image file, a folder (searched recursively) or a glob such as 'pics/*.png'"
        ),
        "checkpoint": Key("best (default), last or a checkpoint file (with run=)"),
        "topk": Key(
            "how many classes to list per image (default 5, at most the class count)", Kind.INT
        ),
        "tta": Key("none (default) or flip"),
        "out": Key("output folder (default <run>/predict/<date>_<time>/, or beside model=)"),
        "device": Key("auto (default), cpu, cuda, cuda:N or mps (model=: auto, cpu or cuda)"),
    },
)
USAGE = """usage: imgcls predict run=<run dir> images=<path> [key=value ...]
       imgcls predict model=<file.onnx> images=<path> [key=value ...]

Values follow imgcls train's grammar: quote what holds spaces, commas or brackets
(images='my pics/', images='pics/[01].png').

keys:
"""


def run_predict(args: Sequence[str]) -> int:
    """``imgcls predict run=<dir>|model=<file.onnx> images=<file|folder|glob> [topk=5]
    [tta=flip] [out=]``."""
    if wants_help(args):
        print(USAGE + PREDICT.usage())
        return 0
    out_dir, records, skipped = predict(**PREDICT.parse(args))
    print_records(records)
    print(f"{len(records)} images classified, {len(skipped)} skipped; results: {out_dir}")
    return 0


def print_records(records: list[dict[str, Any]]) -> None:
    """One table row per image: the file, the prediction, its probability, the next classes;
    for a multi-label model, the file and its label set with each label's probability."""
    from rich.console import Console
    from rich.table import Table

    if records and "labels" in records[0]:
        table = Table("file", "labels", box=None)
        for record in records:
            chosen = sorted(record["labels"], key=lambda t: -t["probability"])
            text = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in chosen)
            table.add_row(Path(record["file"]).name, text or "(none)")
        Console(width=140).print(table)
        return
    table = Table("file", "prediction", "probability", "top classes", box=None)
    for record in records:
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in record["top"][1:])
        table.add_row(
            Path(record["file"]).name, record["prediction"], f"{record['probability']:.3f}", top
        )
    Console(width=140).print(table)
