"""Speed features that the CPU can check: compile modes, timings, FLOP utilisation, the
throughput benchmark at its small size, and a start-up that imports plotting and tracking
libraries only when they are needed. (The figures themselves are measured on a GPU.)"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY, cli_env

from imgcls.app.job import train
from imgcls.app.validation import trainer_options, validate
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.options.trainer import TrainerOptions
from imgcls.train import engine as engine_module
from imgcls.train.devices import peak_tflops, throughput


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("false", None),
        ("true", "default"),
        ("default", "default"),
        ("reduce-overhead", "reduce-overhead"),
        ("max-autotune", "max-autotune"),
    ],
)
def test_compile_modes_compose_validate_and_reach_the_engine(value, mode):
    cfg = compose([*TINY, f"trainer.compile={value}"])
    validate(cfg)
    assert trainer_options(cfg.trainer).compile_mode == mode


def test_an_unknown_compile_mode_is_one_line_naming_the_valid_ones():
    with pytest.raises(UserError, match="reduce-overhead") as error:
        validate(compose([*TINY, "trainer.compile=fastest"]))
    assert "fastest" in str(error.value) and "\n" not in str(error.value)
    assert TrainerOptions(compile=False).compile_mode is None
    assert TrainerOptions(compile=True).compile_mode == "default"


def test_summary_has_timings_and_throughput_with_no_utilisation_on_cpu(tmp_path):
    result = train(
        compose([*TINY, "trainer.device=cpu", "trainer.precision=32", f"output_root={tmp_path}"])
    )
    summary = json.loads((result.run_dir / "summary.json").read_text())
    timings = summary["timings"]
    for key in (
        "startup",
        "data",
        "model",
        "training",
        "validation",
        "test",
        "plots",
        "checkpoint_writes",
        "checkpoint_waits",
    ):
        assert isinstance(timings[key], float) and timings[key] >= 0, key
    assert timings["compile"] is None  # not compiled
    assert timings["training"] == summary["train_seconds"]
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert "compile_seconds" not in rows[0]
    rate = summary["throughput"]
    assert rate["images_per_second"] > 0 and rate["tflops"] > 0
    assert rate["mfu"] is None and rate["peak_tflops"] is None  # no peak known for a CPU
    expected = 3 * summary["flops"] * rate["images_per_second"] / 1e12
    assert rate["tflops"] == pytest.approx(expected, rel=1e-3)


def test_compilation_is_timed_apart_from_the_epoch(tmp_path, monkeypatch):
    """With torch.compile stubbed (inductor takes a minute on a CPU), the first step is
    reported as compile time and left out of the first epoch's images/s."""
    compiled = []

    def fake_compile(model, mode=None):
        compiled.append(mode)
        return model

    monkeypatch.setattr(engine_module.torch, "compile", fake_compile)
    result = train(
        compose(
            [*TINY, "trainer.compile=max-autotune", "trainer.device=cpu", "trainer.precision=32"]
            + [f"output_root={tmp_path}"]
        )
    )
    assert compiled == ["max-autotune"]
    lines = (result.run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("compile_seconds")
    first, second = (float(line.split(",")[column]) for line in lines[1:3])
    assert first > 0 and second == 0
    assert result.summary["timings"]["compile"] == pytest.approx(first, abs=1e-3)


def test_peaks_and_utilisation():
    assert peak_tflops(torch.device("cpu"), "bf16") is None
    figures = throughput(1000.0, 10**9, 100.0)  # 1 GFLOP forward: 3 TFLOP/s at 1000 images/s
    assert figures["tflops"] == pytest.approx(3.0) and figures["mfu"] == pytest.approx(0.03)
    assert throughput(None, 10**9, 100.0)["mfu"] is None


def test_gpu_throughput_benchmark_runs_at_its_small_size_on_the_cpu(monkeypatch, capsys):
    """The script as `python benchmarks/gpu_throughput.py --device cpu --size small` runs it
    (in-process, as __main__: a program of its own would import torch again for 4 s)."""
    script = ROOT / "benchmarks" / "gpu_throughput.py"
    argv = [str(script), "--device", "cpu", "--size", "small", "--epochs", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("ceiling") for line in lines)
    name, value = lines[-1].split("=")
    assert name == "engine_vs_bare" and float(value) > 0


def test_building_a_run_imports_no_plotting_or_tracking_library():
    """Start-up: matplotlib, tensorboard and mlflow wait until a run draws or logs, and
    torchvision until a model of it (resnet18, vgg, ...) is built (the tiny run's is not), and
    timm (seconds) and the Hugging Face hub until a model=timm run."""
    probe = (
        "import sys\n"
        "from imgcls.config.compose import compose\n"
        "from imgcls.app import build\n"
        "from imgcls.app.validation import validate\n"
        f"cfg = compose({TINY!r} + ['trainer.device=cpu'])\n"
        "validate(cfg)\n"
        "build.build_training(cfg, build.place(cfg.trainer))\n"
        "print([m for m in ('matplotlib', 'tensorboard', 'mlflow', 'torchvision', 'timm', "
        "'huggingface_hub', 'safetensors') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
