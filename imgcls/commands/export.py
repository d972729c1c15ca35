"""``imgcls export run=<dir> [checkpoint=best|last] [format=onnx|torchscript|pt2] [out=...]``.

Writes the run's model (its EMA weights when it kept an average) and an export.json beside
it, after checking that the exported model gives the PyTorch model's logits (see
:mod:`imgcls.app.export`). ``imgcls predict model=<dir>/model.onnx images=...`` then
classifies images with ONNX Runtime alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgcls.config.arguments import Grammar, Key, wants_help

EXPORT = Grammar(
    "export",
    {
        "run": Key("a run directory (or a checkpoint file)"),
        "checkpoint": Key("best (default), last or a checkpoint file"),
        "format": Key("onnx (default), torchscript (.pt, torch.jit.trace) or pt2 (torch.export)"),
        "exporter": Key(
            "onnx only: auto (default: dynamo, falling back to torchscript), dynamo, torchscript"
        ),
        "out": Key("output folder (default <run>/export/<format>_<checkpoint>/)"),
    },
)
USAGE = """usage: imgcls export run=<run dir> [key=value ...]

Writes the model and export.json (classes, input shape, preprocessing, format,
source run and checkpoint, and a parity record against the PyTorch model).
Values follow imgcls train's grammar: quote what holds spaces or commas (out='my export/').

keys:
"""


def run_export(args: Sequence[str]) -> int:
    """``imgcls export run=<dir> [checkpoint=] [format=] [exporter=] [out=]``."""
    if wants_help(args):
        print(USAGE + EXPORT.usage())
        return 0
    options = EXPORT.parse(args)
    from imgcls.app.export import export_run  # torch: imported only when there is work

    result = export_run(options.pop("run", None), fmt=options.pop("format", "onnx"), **options)
    info, parity = result.info, result.info["parity"]
    source = info["source"]
    weights = "EMA weights" if source["ema"] else "weights"
    print(
        f"exported {source['model']['name']} ({weights} of the {source['checkpoint']} "
        f"checkpoint, epoch {source['epoch']}) as {info['format']} with {info['exporter']}"
        + (f", opset {info['opset']}" if info["opset"] else "")
    )
    images = "test images" if parity["source"] == "test set" else "random images"
    outputs = "probability" if info.get("task") == "multilabel" else "logit"
    print(
        f"parity on {parity['images']} {images}: max |{outputs} difference| "
        f"{parity['max_abs_diff']:.2e} (allowed {parity['tolerance']:g}), top-1 agreement "
        f"{parity['top1_agreement']:.0%}"
    )
    if info.get("task") == "multilabel":
        print(
            "output: sigmoid probabilities; export.json's thresholds (the checkpoint's, one "
            "per label) decide each image's label set"
        )
    print(f"model: {result.model_file}")
    print(f"export.json: {result.out_dir / 'export.json'}")
    if info["format"] == "onnx":
        print(f"classify without PyTorch: imgcls predict model={result.model_file} images=<path>")
    return 0
