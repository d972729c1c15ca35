"""``imgcls export``: a run's model as ONNX, TorchScript or a torch.export program (.pt2),
with an ``export.json`` beside it and a parity check against the PyTorch model.

What happens, in order (nothing is written unless every step succeeds):

1. The run's checkpoint is loaded on the CPU in fp32, with its EMA weights when the run kept
   an average (:func:`imgcls.app.inference.load_run`). A multi-label run's model is exported
   with a sigmoid after it (:class:`SigmoidOutputs`): its output is the probabilities, and
   export.json carries the task and the per-label thresholds the checkpoint stores, which
   ``imgcls predict model=`` applies. A calibrated run's model (``calibrate=temperature``)
   is exported with its logits divided by the temperature (:class:`TemperatureScaled`),
   which export.json records.
2. The model is exported with a dynamic batch dimension, traced on a batch of 2:
   ``onnx`` through ``torch.onnx.export`` — the torch.export-based exporter
   (``dynamo=True``, PyTorch's default and maintained one) first, and the TorchScript-based
   exporter (``dynamo=False``) when that fails, saying so; ``exporter=dynamo|torchscript``
   picks one without fallback. ``torchscript`` through ``torch.jit.trace``; ``pt2`` through
   ``torch.export.export`` and ``torch.export.save``.
3. Parity: the exported file is loaded back (ONNX Runtime for ONNX, ``torch.jit.load`` and
   ``torch.export.load`` for the others) and run on up to 256 test images of the run's
   dataset, or on random images when the dataset cannot be loaded, in batches of 1 and 32
   (not the traced 2). The maximum absolute difference of the outputs (logits; a multi-label
   model's probabilities) from the PyTorch model's must be at most 1e-4 and every top-1 prediction must agree; otherwise the export
   fails with one line.
4. The model file and export.json are written into a hidden staging folder beside the
   output folder and moved into place only then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from imgcls.app.build import build_dataset
from imgcls.app.inference import LoadedRun, load_run
from imgcls.app.prediction import MODES, RESIZE
from imgcls.base.errors import UserError, one_line, unknown_choice
from imgcls.base.extras import require
from imgcls.base.folders import check_output_dir, make_dirs, remove_made, written_by_imgcls
from imgcls.base.record import RunFolder
from imgcls.base.runs import write_json
from imgcls.base.versions import library_versions
from imgcls.config.values import component_options
from imgcls.data.targets import MULTILABEL

UMASK = os.umask(0)
os.umask(UMASK)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
EXPORTERS = ("auto", "dynamo", "torchscript")  # ONNX only
EXPORT_FILE = "export.json"
TOLERANCE = 1e-4  # maximum absolute difference of fp32 logits
PARITY_IMAGES = 256
TRACE_BATCH = 2  # the example batch; parity runs batches of other sizes
PARITY_BATCH = 32
INPUT_NAME, OUTPUT_NAME = "images", "logits"
PROBABILITIES_NAME = "probabilities"  # a multi-label model's output: sigmoid in the graph
EXPORTER_NAMES = {
    "dynamo": "torch.onnx.export(dynamo=True)",
    "torchscript": "torch.onnx.export(dynamo=False)",
}

Runner = Callable[[np.ndarray], np.ndarray]  # float32 NCHW in, float32 logits out


@dataclass
class ExportResult:
    """What an export wrote: its folder, the model file and the export.json record."""

    out_dir: Path
    model_file: Path
    info: dict[str, Any]


def _reason(error: BaseException) -> str:
    """Why an exporter failed: torch's texts go on for pages after their first line."""
    return one_line(error, typed=True, first_line=True, limit=300)


def default_out_dir(loaded: LoadedRun, checkpoint: str, fmt: str) -> Path:
    """``<run>/export/<format>_<checkpoint>/`` (beside a lone checkpoint file: its folder)."""
    base = loaded.run_dir if loaded.run_dir is not None else loaded.checkpoint.parent
    return RunFolder(base).export_folder(fmt, checkpoint)


def is_export_output(folder: Path) -> bool:
    """True for a folder holding an earlier export (its export.json, as imgcls writes it),
    whose model and export.json a new export replaces."""
    return written_by_imgcls(folder / EXPORT_FILE, b'"exporter_fallback": ')


def check_out_dir(out: Path) -> None:
    """``out`` must be a new or empty folder, or one holding an earlier export (replaced)."""
    check_output_dir(out, "out", is_export_output)


class SigmoidOutputs(nn.Module):
    """A multi-label model as exported: a sigmoid per label after its logits, so that the
    file gives the probabilities that export.json's thresholds apply to."""

    output_name = PROBABILITIES_NAME

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, classes) of the wrapped model's logits."""
        return torch.sigmoid(self.model(images))


class TemperatureScaled(nn.Module):
    """A calibrated model as exported: its logits divided by the run's temperature (fitted
    by ``calibrate=temperature``), so that a softmax of the file's outputs gives the
    calibrated probabilities that ``eval`` and ``predict run=`` give."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The wrapped model's logits divided by the temperature."""
        return self.model(images) / self.temperature


def output_name(model: nn.Module) -> str:
    """The exported graph's output name: ``logits``, or ``probabilities`` for a multi-label
    model wrapped in :class:`SigmoidOutputs`."""
    return str(getattr(model, "output_name", OUTPUT_NAME))


# -- parity inputs --------------------------------------------------------------------------
def parity_images(loaded: LoadedRun, count: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Up to ``count`` uint8 test images of the run's dataset, or random ones (seeded) when
    the dataset cannot be loaded or no longer fits the checkpoint; with where they came from."""
    channels = int(loaded.spec["channels"])
    height, width = (int(v) for v in loaded.spec["image_size"])
    reason = ""
    cfg = OmegaConf.create(OmegaConf.to_container(loaded.config, resolve=True))
    if "download" in cfg.get("dataset", {}):
        cfg.dataset.download = False  # export reads what is here; it never downloads
    try:
        data = build_dataset(cfg)
        if list(data.classes) != loaded.classes:
            reason = "its classes differ from the checkpoint's"
        elif (data.channels, *data.image_size) != (channels, height, width):
            reason = "its image shape differs from the checkpoint's"
        elif len(data.test) == 0:
            reason = "its test split is empty"
        else:
            n = min(count, len(data.test))
            images = data.test.subset(np.arange(n)).materialize().images.cpu()
            return images, {"source": "test set", "dataset": data.name}
    except (UserError, OSError) as error:  # files missing or unreadable: not here
        reason = one_line(error)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, channels, height, width), generator=generator)
    name = component_options(loaded.config, "dataset")[0][0]
    source = {"source": "random inputs", "dataset": name, "reason": f"dataset not used: {reason}"}
    return images.to(torch.uint8), source


def normalise(images: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """uint8 NCHW -> the model's float32 input, as :func:`predict_probabilities` does."""
    m = torch.tensor(list(spec["mean"]), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(list(spec["std"]), dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float().div_(255.0) - m) / s


def batch_sizes(n: int) -> list[int]:
    """One image alone (what predict often sees), then batches of PARITY_BATCH."""
    sizes = [1] if n else []
    rest = n - 1
    while rest > 0:
        sizes.append(min(PARITY_BATCH, rest))
        rest -= sizes[-1]
    return sizes


@torch.inference_mode()
def check_parity(
    model: nn.Module, runner: Runner, inputs: torch.Tensor, tolerance: float
) -> dict[str, Any]:
    """Run both on the same batches; the record export.json keeps (``passed`` says whether
    the largest logit difference is within ``tolerance`` and every top-1 agrees)."""
    reference, exported, sizes = [], [], batch_sizes(int(inputs.shape[0]))
    start = 0
    for size in sizes:
        batch = inputs[start : start + size]
        start += size
        reference.append(model(batch).float().numpy())
        exported.append(np.asarray(runner(batch.numpy()), dtype=np.float32))
    ref, out = np.concatenate(reference), np.concatenate(exported)
    if out.shape != ref.shape:
        raise UserError(
            f"the exported model returned logits of shape {list(out.shape)}, PyTorch "
            f"{list(ref.shape)}: export failed the parity check; nothing was written"
        )
    finite = bool(np.isfinite(out).all())
    diff = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max()) if finite else None
    agree = int((out.argmax(axis=1) == ref.argmax(axis=1)).sum())
    n = int(ref.shape[0])
    return {
        "max_abs_diff": diff if finite else float("inf"),
        "top1_agreement": agree / n,
        "top1_mismatches": n - agree,
        "images": n,
        "batch_sizes": sorted(set(sizes)),
        "tolerance": tolerance,
        "reference": "the PyTorch model, fp32 on the CPU",
        "passed": finite and diff is not None and diff <= tolerance and agree == n,
    }


# -- exporters ------------------------------------------------------------------------------
# Exporters warn about their own deprecations (torch.jit, the TorchScript-based ONNX
# exporter) and about tracing; those warnings are silenced: the parity check is the test.


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """The dynamo exporter and onnxscript log progress at INFO (``No unused functions to
    remove``); a run's INFO logging would print it, so those loggers are held at WARNING."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx_dynamo(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX through torch.export (the dynamo exporter), its info logs held back."""
    with _quiet_exporter_logs():
        _export_onnx_dynamo(model, example, path)


def _export_onnx_dynamo(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    program = torch.onnx.export(
        model,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[output_name(model)],
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def export_onnx_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX through the TorchScript-based exporter: the fallback when dynamo fails."""
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[output_name(model)],
        dynamo=False,
        dynamic_axes={INPUT_NAME: {0: "batch"}, output_name(model): {0: "batch"}},
    )


ONNX_EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    "dynamo": export_onnx_dynamo,
    "torchscript": export_onnx_torchscript,
}


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, exporter: str
) -> tuple[str, dict[str, str] | None]:
    """Write ``path``; returns (the exporter that wrote it, the fallback record or None)."""
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    failures: list[tuple[str, str]] = []
    for name in order:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ONNX_EXPORTERS[name](model, example, path)
        except Exception as error:  # an exporter's failure, of any kind: try the next one
            failures.append((name, _reason(error)))
            path.unlink(missing_ok=True)
            continue
        if not failures:
            return EXPORTER_NAMES[name], None
        failed, reason = failures[0]
        print(
            f"imgcls: the {EXPORTER_NAMES[failed]} ONNX exporter failed ({reason}); "
            f"exported with {EXPORTER_NAMES[name]} instead",
            file=sys.stderr,
        )
        return EXPORTER_NAMES[name], {"from": EXPORTER_NAMES[failed], "reason": reason}
    reasons = "; ".join(f"{EXPORTER_NAMES[n]}: {r}" for n, r in failures)
    hint = "" if exporter == "auto" else " (exporter=auto tries both)"
    raise UserError(f"cannot export the model to ONNX{hint}: {reasons}")


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """A traced TorchScript file; returns how it was made."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (example,), check_trace=False)
            torch.jit.save(traced, str(path))
    except Exception as error:
        raise UserError(f"cannot trace the model with torch.jit.trace: {_reason(error)}") from error
    return "torch.jit.trace"


def export_pt2(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """A ``.pt2`` ExportedProgram with a dynamic batch dimension; returns how it was made."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(
                model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
            )
            torch.export.save(program, str(path))
    except Exception as error:
        raise UserError(
            f"cannot export the model with torch.export: {_reason(error)} "
            "(format=onnx falls back to the TorchScript-based exporter)"
        ) from error
    return "torch.export.export"


def load_runner(fmt: str, path: Path) -> Runner:
    """The exported file loaded back, as a float32-in, logits-out function."""
    if fmt == "onnx":
        ort = require("onnxruntime", "format=onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: batch})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        else:
            module = torch.export.load(str(path)).module()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).float().numpy()

    return run


def onnx_opset(path: Path) -> int | None:
    """The default-domain opset an ONNX file was written with, recorded in export.json."""
    onnx = require("onnx", "format=onnx")
    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


# -- the command ----------------------------------------------------------------------------
def check_export_arguments(run: str | Path | None, fmt: str, exporter: str) -> None:
    """``run`` is required, ``fmt`` and ``exporter`` are choices, ``exporter`` applies to ONNX
    only, and ONNX needs its extra installed: each a one-line error before any work."""
    if run is None:
        raise UserError("imgcls export needs run=<run dir>: e.g. imgcls export run=outputs/...")
    if fmt not in FORMATS:
        raise unknown_choice("format", fmt, FORMATS)
    if exporter not in EXPORTERS:
        raise unknown_choice("exporter", exporter, EXPORTERS)
    if exporter != "auto" and fmt != "onnx":
        raise UserError(f"exporter={exporter} applies to format=onnx only, not format={fmt}")
    if fmt == "onnx":
        require("onnx", "format=onnx")
        require("onnxruntime", "format=onnx")


def export_run(
    run: str | Path | None,
    checkpoint: str = "best",
    fmt: str = "onnx",
    out: str | Path | None = None,
    exporter: str = "auto",
    *,
    tolerance: float = TOLERANCE,
    max_images: int = PARITY_IMAGES,
) -> ExportResult:
    """Export a run's model and write ``<out>/model.<ext>`` and ``<out>/export.json``.

    The arguments are checked before any work (:func:`check_export_arguments`)."""
    check_export_arguments(run, fmt, exporter)
    loaded = load_run(run, checkpoint, "cpu")
    out_dir = Path(out) if out is not None else default_out_dir(loaded, checkpoint, fmt)
    check_out_dir(out_dir)
    channels = int(loaded.spec["channels"])
    if channels not in MODES:
        raise UserError(f"cannot export a {channels}-channel model: predict handles 1, 3 or 4")
    model: nn.Module = loaded.model.float().eval()
    if loaded.temperature != 1.0:  # calibrate=temperature: the graph divides by T
        model = TemperatureScaled(model, loaded.temperature).eval()
    if loaded.task == MULTILABEL:
        model = SigmoidOutputs(model).eval()
    images, source = parity_images(loaded, max_images)
    inputs = normalise(images, loaded.spec)
    example = inputs[:1].expand(TRACE_BATCH, -1, -1, -1) if len(inputs) < TRACE_BATCH else inputs
    example = example[:TRACE_BATCH].clone()

    created = make_dirs(out_dir.parent, "output folder")  # only these go if the export fails
    try:
        stage = Path(
            tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent)
        )
    except OSError as error:
        remove_made(created)
        raise UserError(
            f"cannot write the export to {out_dir}: {error.strerror or error}"
        ) from error
    stage.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700 folders; this one becomes the export
    try:
        file = stage / f"model{FORMATS[fmt]}"
        fallback, opset = None, None
        if fmt == "onnx":
            used, fallback = export_onnx(model, example, file, exporter)
            opset = onnx_opset(file)
        elif fmt == "torchscript":
            used = export_torchscript(model, example, file)
        else:
            used = export_pt2(model, example, file)
        parity = check_parity(model, load_runner(fmt, file), inputs, tolerance)
        parity.update(source)
        if not parity.pop("passed"):
            raise UserError(parity_failure(fmt, parity))
        info = export_info(loaded, checkpoint, fmt, file.name, used, fallback, opset, parity)
        write_json(stage / EXPORT_FILE, info)
        final = move_into_place(stage, out_dir, file.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_made(created)  # only the folders this export made
        raise
    return ExportResult(out_dir, final, info)


def parity_failure(fmt: str, parity: dict[str, Any]) -> str:
    """The one-line reason a parity check failed (logits too far apart, top-1 changes)."""
    n, wrong, diff = parity["images"], parity["top1_mismatches"], parity["max_abs_diff"]
    problems = []
    if not diff <= parity["tolerance"]:
        problems.append(
            f"logits differ from PyTorch's by up to {diff:.3g} "
            f"(allowed: {parity['tolerance']:g} in fp32)"
        )
    if wrong:
        problems.append(f"top-1 prediction differs on {wrong} of {n} images")
    where = "test images" if parity["source"] == "test set" else "random images"
    return (
        f"export failed the parity check on {n} {where}: the exported {fmt} model's "
        f"{' and its '.join(problems)}; nothing was written"
    )


def move_into_place(stage: Path, out_dir: Path, name: str) -> Path:
    """The staged folder becomes ``out_dir`` (one rename); into an earlier export, the model
    file and then export.json replace the old ones (each by a rename)."""
    if not out_dir.exists():
        try:
            os.rename(stage, out_dir)
            return out_dir / name
        except OSError:
            if not out_dir.is_dir():  # not a folder made meanwhile: a real error
                raise
    previous = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        previous = json.loads((out_dir / EXPORT_FILE).read_text()).get("file")
    os.replace(stage / name, out_dir / name)
    os.replace(stage / EXPORT_FILE, out_dir / EXPORT_FILE)
    stage.rmdir()
    if previous and previous != name and Path(previous).name == previous:
        (out_dir / previous).unlink(missing_ok=True)  # the earlier export's model file
    return out_dir / name


def export_info(
    loaded: LoadedRun,
    checkpoint: str,
    fmt: str,
    file: str,
    exporter: str,
    fallback: dict[str, str] | None,
    opset: int | None,
    parity: dict[str, Any],
) -> dict[str, Any]:
    """What export.json holds: enough to feed the model without imgcls, and where it came from."""
    spec, classes = loaded.spec, loaded.classes
    thresholds = loaded.thresholds  # a multi-label checkpoint's tuned ones, or None
    multilabel = thresholds is not None
    channels = int(spec["channels"])
    height, width = (int(v) for v in spec["image_size"])
    model_name, _, model_options = component_options(loaded.config, "model")[0]
    versions = library_versions()
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "format": fmt,
        "file": file,
        "exporter": exporter,
        "exporter_fallback": fallback,
        "opset": opset,
        "classes": classes,
        "num_classes": len(classes),
        "input_name": INPUT_NAME,
        "output_name": PROBABILITIES_NAME if multilabel else OUTPUT_NAME,
        "input_shape": [channels, height, width],
        "dynamic_batch": True,
        "dtype": "float32",
        "output": (
            "sigmoid probabilities (batch, num_classes); label c is predicted where "
            "probability >= thresholds[c]"
            if multilabel
            else "logits (batch, num_classes), already divided by temperature; softmax over "
            "classes gives the probabilities"
        ),
        "task": loaded.task,
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        # calibrate=temperature: the graph already divides the logits by it (1.0: not scaled)
        "temperature": loaded.temperature,
        "channels": channels,
        "color_mode": MODES[channels],
        "image_size": [height, width],
        "resize": {
            "interpolation": RESIZE,
            "size": [height, width],
            "keep_aspect_ratio": False,
            "library": "Pillow (Image.resize)",
        },
        "mean": [float(v) for v in spec["mean"]],
        "std": [float(v) for v in spec["std"]],
        "normalization": "x = (pixel / 255 - mean[c]) / std[c], NCHW, channel order as color_mode",
        "source": {
            "run": str(loaded.run_dir) if loaded.run_dir is not None else None,
            "checkpoint": Path(checkpoint).stem if checkpoint in ("best", "last") else checkpoint,
            "checkpoint_file": str(loaded.checkpoint),
            "epoch": loaded.epoch,
            "ema": loaded.ema,
            "model": {"name": model_name, **model_options},
            "dataset": spec.get("name"),
        },
        "parity": parity,
        "versions": versions,
        "created": datetime.now().isoformat(timespec="seconds"),
    }
