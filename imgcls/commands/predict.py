"""``imgcls predict run=<dir>|model=<file.onnx> images=<file|folder|glob>``: classify image files.

Each image gets the model's own preprocessing: converted to its channel count (PIL modes L,
RGB or RGBA), resized to its training size (bilinear), normalised with its mean and std.
Unreadable files are reported by name and skipped; the rest are still classified.

``run=`` loads a run's checkpoint with PyTorch; ``model=`` runs a model written by
``imgcls export format=onnx`` with ONNX Runtime and the preprocessing in its export.json,
and imports neither torch nor torchvision: this module imports torch only inside
:func:`predict_images`, through :mod:`imgcls.app.inference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgcls.app.prediction import output_folder, read_images, top_k_records, write_predictions
from imgcls.base.errors import UserError
from imgcls.commands.args import parse_arguments, usage_lines

PREDICT_KEYS = {
    "run": "a run directory (or a checkpoint file)",
    "model": "instead of run=: an ONNX file written by imgcls export (runs without PyTorch)",
    "images": "an image file, a folder (searched recursively) or a glob such as 'pics/*.png'",
    "checkpoint": "best (default), last or a checkpoint file (with run=)",
    "topk": "how many classes to list per image (default 5, at most the class count)",
    "tta": "none (default) or flip",
    "out": "output folder (default <run>/predict/<date>_<time>/, or beside model=)",
    "device": "auto (default), cpu, cuda, cuda:N or mps (model=: auto, cpu or cuda)",
}


def predict_images(
    run: str | Path,
    images: str,
    checkpoint: str = "best",
    topk: int = 5,
    tta: str = "none",
    out: str | Path | None = None,
    device: str = "auto",
) -> tuple[Path, list[dict[str, Any]], list[tuple[str, str]]]:
    """Classify the images with a run's PyTorch model; returns (output folder, one record
    per image, skipped files)."""
    from imgcls.app.inference import classify, load_run  # torch: only for run=

    loaded = load_run(run, checkpoint, device)
    names, arrays, skipped = read_images(
        images, int(loaded.spec["channels"]), loaded.spec["image_size"]
    )
    probabilities = classify(loaded, arrays, tta)
    records = top_k_records(names, probabilities, loaded.classes, topk)
    out_dir = output_folder(out, loaded.run_dir or loaded.checkpoint.parent)
    source = {
        "run": str(loaded.run_dir or loaded.checkpoint),
        "checkpoint": str(loaded.checkpoint),
        "classes": loaded.classes,
    }
    write_predictions(out_dir, records, skipped, source)
    return out_dir, records, skipped


def run_predict(args: Sequence[str]) -> int:
    """``imgcls predict run=<dir>|model=<file.onnx> images=<file|folder|glob> [topk=5]
    [tta=flip] [out=]``."""
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: imgcls predict run=<run dir> images=<path> [key=value ...]\n"
            "       imgcls predict model=<file.onnx> images=<path> [key=value ...]\n\nkeys:\n"
            + usage_lines(PREDICT_KEYS)
        )
        return 0
    options = parse_arguments(args, PREDICT_KEYS, "predict")
    if "run" in options and "model" in options:
        raise UserError(
            "imgcls predict takes run=<run dir> or model=<file.onnx>, not both: run= uses "
            "PyTorch, model= an exported ONNX file"
        )
    source = "model" if "model" in options else "run"
    for key in (source, "images"):
        if key not in options or isinstance(options[key], list):
            raise UserError(
                f"imgcls predict needs {key}=<...>: e.g. run=outputs/... images=pics/ "
                "(or model=<file.onnx> images=pics/)"
            )
    if source == "model" and "checkpoint" in options:
        raise UserError(
            "checkpoint= goes with run=: an exported model holds the weights of the checkpoint "
            "it was exported from (see its export.json)"
        )
    try:
        topk = int(str(options.get("topk", 5)))
    except ValueError as error:
        raise UserError(f"topk={options['topk']} is invalid: expected an integer") from error
    if topk < 1:
        raise UserError(f"topk={topk} is invalid: list at least 1 class per image")
    tta = str(options.get("tta", "none"))
    if tta not in ("none", "flip"):
        raise UserError(f"unknown tta '{tta}'; available: flip, none")
    out, device = options.get("out"), str(options.get("device", "auto"))
    if source == "model":
        from imgcls.app.onnx_predict import predict_onnx

        out_dir, records, skipped = predict_onnx(
            str(options["model"]),
            str(options["images"]),
            topk,
            tta,
            out,
            device,  # type: ignore[arg-type]
        )
    else:
        out_dir, records, skipped = predict_images(
            str(options["run"]),
            str(options["images"]),
            str(options.get("checkpoint", "best")),
            topk,
            tta,
            out,  # type: ignore[arg-type]
            device,
        )
    print_records(records)
    print(f"{len(records)} images classified, {len(skipped)} skipped; results: {out_dir}")
    return 0


def print_records(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "prediction", "probability", "top classes", box=None)
    for record in records:
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in record["top"][1:])
        table.add_row(
            Path(record["file"]).name, record["prediction"], f"{record['probability']:.3f}", top
        )
    Console(width=140).print(table)
