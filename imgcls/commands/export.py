"""``imgcls export run=<dir> [checkpoint=best|last] [format=onnx|torchscript|pt2] [out=...]``.

Writes the run's model (its EMA weights when it kept an average) and an export.json beside
it, after checking that the exported model gives the PyTorch model's logits (see
:mod:`imgcls.app.export`). ``imgcls predict model=<dir>/model.onnx images=...`` then
classifies images with ONNX Runtime alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgcls.base.errors import UserError
from imgcls.commands.args import parse_arguments, usage_lines

EXPORT_KEYS = {
    "run": "a run directory (or a checkpoint file)",
    "checkpoint": "best (default), last or a checkpoint file",
    "format": "onnx (default), torchscript (.pt, torch.jit.trace) or pt2 (torch.export)",
    "exporter": "onnx only: auto (default: dynamo, falling back to torchscript), dynamo, torchscript",
    "out": "output folder (default <run>/export/<format>_<checkpoint>/)",
}


def run_export(args: Sequence[str]) -> int:
    """``imgcls export run=<dir> [checkpoint=] [format=] [exporter=] [out=]``."""
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: imgcls export run=<run dir> [key=value ...]\n\n"
            "Writes the model and export.json (classes, input shape, preprocessing, format,\n"
            "source run and checkpoint, and a parity record against the PyTorch model).\n\n"
            "keys:\n" + usage_lines(EXPORT_KEYS)
        )
        return 0
    options = parse_arguments(args, EXPORT_KEYS, "export")
    for key, value in options.items():
        if isinstance(value, list):
            raise UserError(f"{key}={','.join(value)} is invalid: export takes one value per key")
    if "run" not in options:
        raise UserError("imgcls export needs run=<run dir>: e.g. imgcls export run=outputs/...")
    from imgcls.app.export import export_run  # torch: imported only when there is work

    result = export_run(
        str(options["run"]),
        str(options.get("checkpoint", "best")),
        str(options.get("format", "onnx")),
        options.get("out"),  # type: ignore[arg-type]
        str(options.get("exporter", "auto")),
    )
    info, parity = result.info, result.info["parity"]
    source = info["source"]
    weights = "EMA weights" if source["ema"] else "weights"
    print(
        f"exported {source['model']['name']} ({weights} of the {source['checkpoint']} "
        f"checkpoint, epoch {source['epoch']}) as {info['format']} with {info['exporter']}"
        + (f", opset {info['opset']}" if info["opset"] else "")
    )
    images = "test images" if parity["source"] == "test set" else "random images"
    print(
        f"parity on {parity['images']} {images}: max |logit difference| "
        f"{parity['max_abs_diff']:.2e} (allowed {parity['tolerance']:g}), top-1 agreement "
        f"{parity['top1_agreement']:.0%}"
    )
    print(f"model: {result.model_file}")
    print(f"export.json: {result.out_dir / 'export.json'}")
    if info["format"] == "onnx":
        print(f"classify without PyTorch: imgcls predict model={result.model_file} images=<path>")
    return 0
