"""The runner's features with model=torchvision and model=timm: exact resume with EMA,
channels_last with bf16, torch.compile, distillation (each as teacher and as student),
eval/predict/export of their runs, ONNX predict without PyTorch, and the sweep report.

Two tiny models on 1x16x16 synthetic images, trained once for the module: torchvision's
MobileNetV3-small (dropout in its classifier) and timm's ``test_vit`` (attention, layer norm,
GELU, stochastic depth at 0.1), so every random draw a resumed run must replay is there.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CPU, cli_env
from PIL import Image

from imgcls import cli
from imgcls.app import build as build_module
from imgcls.app.inference import load_run
from imgcls.app.job import train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.base.errors import TrainingInterrupted
from imgcls.config.compose import compose
from imgcls.train import engine as engine_module

pytest.importorskip("timm", reason="needs the 'timm' extra (make setup installs it)")

MODELS = {
    "torchvision": ["model=torchvision", "model.variant=mobilenet_v3_small"],
    "timm": ["model=timm", "model.variant=test_vit", "model.drop_path_rate=0.1"],
}
DATA = [
    "dataset=synthetic",
    "dataset.num_samples=120",
    "dataset.image_size=16",
    "dataset.channels=1",
    "dataset.num_classes=4",
    "trainer.batch_size=16",
    *CPU,
]
# Random draws that resume must replay: shuffling, augmentation, dropout / drop path; and EMA.
EXACT = [
    *DATA,
    "trainer.epochs=2",
    "trainer.deterministic=true",
    "trainer.log_every=1",
    "augment=basic",
    "trainer.ema.decay=0.9",
]
TIMING = ("epoch_seconds", "images_per_second")


def config(model: str, extra: list[str], root: Path):
    return compose([*MODELS[model], *extra, f"output_root={root}"])


def metric_values(run_dir: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The folder both straight runs go into (the report reads it as one sweep)."""
    return tmp_path_factory.mktemp("modern")


@pytest.fixture(scope="module")
def runs(sweep) -> dict[str, Path]:
    """One straight run of each model (EXACT), recorded with its model overrides."""
    return {
        model: train(config(model, EXACT, sweep / "runs"), overrides=MODELS[model]).run_dir
        for model in MODELS
    }


# -- exact resume (with EMA) --------------------------------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
def test_an_interrupted_run_resumes_to_the_straight_runs_result(model, runs, tmp_path, monkeypatch):
    """SIGINT in the middle of epoch 2 (raised by the model's 9th training forward pass),
    then ``imgcls train resume=``: the same metrics, weights, optimizer and EMA."""
    real_build = build_module.build_model
    calls = {"n": 0}

    def interrupting(cfg, data):
        built = real_build(cfg, data)

        def hook(module, inputs):
            if module.training:
                calls["n"] += 1
                if calls["n"] == 9:
                    signal.raise_signal(signal.SIGINT)

        built.register_forward_pre_hook(hook)
        return built

    monkeypatch.setattr(build_module, "build_model", interrupting)
    with pytest.raises(TrainingInterrupted):
        train(config(model, EXACT, tmp_path))
    monkeypatch.setattr(build_module, "build_model", real_build)
    (cut,) = (p.parent for p in tmp_path.rglob("summary.json"))
    state = load_checkpoint(cut / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["epoch_progress"]["epoch"] == 2
    assert cli.main(["train", f"resume={cut}"]) == 0
    straight = runs[model]
    assert metric_values(cut) == metric_values(straight)
    final, wanted = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (cut, straight))
    for key in ("model", "optimizer", "scheduler", "ema"):
        assert equal(final[key], wanted[key]), key


# -- channels_last, bf16 and torch.compile -------------------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
def test_channels_last_with_bf16_autocast_trains(model, tmp_path):
    options = [*DATA, "trainer.epochs=1", "trainer.channels_last=true", "trainer.precision=bf16"]
    result = train(config(model, options, tmp_path))
    assert result.summary["status"] == "completed" and result.summary["precision"] == "bf16"
    assert np.isfinite(result.summary["test"]["loss"])


@pytest.mark.parametrize("model", list(MODELS))
def test_torch_compile_traces_the_model(model, tmp_path, monkeypatch):
    """torch.compile with TorchDynamo's ``eager`` backend: the graph capture that inductor
    also needs, without inductor's C++ build (minutes on this CPU; checked by hand); the
    checkpoint keeps the plain model's keys."""
    real_compile = torch.compile
    modes = []

    def dynamo_only(module, mode=None):
        modes.append(mode)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(engine_module.torch, "compile", dynamo_only)
    options = [*DATA, "trainer.epochs=1", "trainer.compile=true", "trainer.limit_train_batches=2"]
    result = train(config(model, options, tmp_path))
    assert modes == ["default"] and result.summary["timings"]["compile"] > 0
    state = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert (
        state["model"].keys() == load_run(result.run_dir, "best", "cpu").model.state_dict().keys()
    )


# -- distillation: each model as teacher and as student ------------------------------------
@pytest.mark.parametrize(("student", "teacher"), [("timm", "torchvision"), ("torchvision", "timm")])
def test_distillation_between_torchvision_and_timm(student, teacher, runs, tmp_path):
    options = [
        *DATA,
        "method=distill",
        f"teacher={runs[teacher]}",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
    ]
    result = train(config(student, options, tmp_path))
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["method"] == "distill" and summary["model"] == student
    row = metric_values(result.run_dir)[0]
    assert float(row["distill_kl"]) > 0 and np.isfinite(float(row["train_loss"]))


# -- eval, predict, export, ONNX predict without torch -------------------------------------
@pytest.mark.parametrize("model", list(MODELS))
def test_eval_rebuilds_the_run_with_its_ema_weights(model, runs, tmp_path):
    run = runs[model]
    out = tmp_path / "eval"
    assert cli.main(["eval", f"run={run}", "device=cpu", f"out={out}"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert load_run(run, "best", "cpu").ema  # the EMA weights, as the test metrics were


NO_TORCH = """
import sys
from imgcls import cli
code = cli.main(["predict", "model={model}", "images={images}", "out={out}"])
print("RESULT", code, "torch" in sys.modules, "timm" in sys.modules)
"""


def test_the_vit_exports_and_predicts_without_torch_as_its_run_does(runs, tmp_path):
    """MobileNetV3's export is in test_export's every-family parity test."""
    run = runs["timm"]
    exported = tmp_path / "onnx"
    assert cli.main(["export", f"run={run}", f"out={exported}"]) == 0
    parity = json.loads((exported / "export.json").read_text())["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    images = tmp_path / "pics"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(images / f"{i}.png")
    script = NO_TORCH.format(model=exported / "model.onnx", images=images, out=tmp_path / "o")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    assert "RESULT 0 False False" in result.stdout, result.stdout + result.stderr
    args = ["predict", f"run={run}", f"images={images}", f"out={tmp_path / 't'}", "device=cpu"]
    assert cli.main(args) == 0
    ours, theirs = (
        json.loads((tmp_path / name / "predictions.json").read_text())["predictions"]
        for name in ("o", "t")
    )
    assert len(ours) == len(theirs) == 4
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine["prediction"] == reference["prediction"]
        assert mine["probability"] == pytest.approx(reference["probability"], abs=1e-4)


# -- the report of a sweep over both -------------------------------------------------------
def test_the_report_ranks_both_models(runs, sweep, capsys):
    assert cli.main(["report", str(sweep / "runs")]) == 0
    assert "2 configurations" in capsys.readouterr().out
    board = (sweep / "runs" / "leaderboard.md").read_text()
    assert "mobilenet_v3_small" in board and "test_vit" in board
