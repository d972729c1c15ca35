"""The zoo from the command line: listing, facts for an input shape, smoke runs per family."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from conftest import CPU, ROOT

from imgcls import cli
from imgcls.app.job import train
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.compose import compose
from imgcls.models.facts import count_flops, count_parameters
from imgcls.registry import MODELS


def test_list_models_shows_every_variant_and_efficientnet_scaling(capsys):
    assert cli.main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in [*FAMILIES, *VARIANTS, "simplecnn"]:
        assert re.search(rf"(^|\s){name}\s", out, re.M), name
    assert "φ=3: rule depth α^φ=1.73 width β^φ=1.33 resolution γ^φ=1.52" in out
    assert "torchvision depth 3.1 width 2, native 600 px" in out


def test_list_models_pattern_matches_variants(capsys):
    assert cli.main(["list", "models", "vgg1?_bn"]) == 0
    out = capsys.readouterr().out
    assert "vgg11_bn" in out and "vgg19_bn" in out and " vgg16 " not in out
    assert "resnet18" not in out


def test_list_models_stays_torch_free():
    """`imgcls --help`, `imgcls list` and the torchvision listing import neither torch nor timm."""
    code = (
        "import sys, io, contextlib; from imgcls import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = cli.main(['list', 'models']) or cli.main(['list', 'models', '--source', 'torchvision'])\n"
        "    rc = rc or cli.main(['list']) or cli.main(['--help'])\n"
        "sys.exit(rc or (3 if {'torch', 'timm'} & set(sys.modules) else 0))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_list_models_with_input_prints_params_and_flops(capsys):
    argv = ["list", "models", "resnet18", "--input", "3x224x224", "--classes", "1000"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    with torch.device("meta"):
        model = MODELS.build("resnet18", {}, num_classes=1000, in_channels=3, image_size=(224, 224))
        flops = count_flops(model, (3, 224, 224), device="meta")
    assert count_parameters(model) == 11_689_512 and flops > 3e9
    assert re.search(rf"resnet18\s+imagenet\s+11,689,512\s+{flops / 1e9:.3g} G", out)


def test_list_models_input_for_small_images(capsys):
    assert cli.main(["list", "models", "lenet*", "--input=1x8x8"]) == 0
    out = capsys.readouterr().out
    lenet = MODELS.build("lenet5", {}, num_classes=10, in_channels=1, image_size=(8, 8))
    assert re.search(rf"lenet5\s+cifar\s+{count_parameters(lenet):,}\s", out)
    assert "lenet5_relu" in out and "1x8x8 input and 10 classes" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input", "3x32"], "--input '3x32' is invalid: give channels x height x width"),
        (["--input", "0x8x8"], "--input '0x8x8' is invalid"),
        (["--input", "rgb"], "--input 'rgb' is invalid"),
        (["--input"], "imgcls list: argument --input: expected one argument"),
        (["--input", "1x8x8", "--classes", "1"], "--classes '1' is invalid"),
        (["--classes", "3"], "--classes goes with --input"),
    ],
)
def test_bad_input_shape_is_one_line_exit_2(capsys, argv, message):
    assert cli.main(["list", "models", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imgcls: error: {message}") and err.count("\n") == 1


def test_input_applies_to_models_only(capsys):
    assert cli.main(["list", "optimizers", "--input", "3x32x32"]) == 2
    assert "--input applies to models only" in capsys.readouterr().err


# A reduced `experiment=smoke` (one epoch on the digits) per family; the heavier ones are slow.
# One case a family: a variant runs through the same run as its family (resnet50, a case of
# its own here, took 10 s; its bottleneck blocks run forward and backward at 8x8 and 32x32
# in tests/test_models.py, and its parameter count is torchvision's there).
SMOKE = [
    pytest.param(["model=lenet"], id="lenet"),
    pytest.param(["model=densenet"], id="densenet"),
    pytest.param(["model=resnet"], id="resnet"),
    pytest.param(["model=efficientnet"], id="efficientnet", marks=pytest.mark.slow),
    pytest.param(["model=alexnet"], id="alexnet", marks=pytest.mark.slow),
    pytest.param(["model=vgg"], id="vgg", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("overrides", SMOKE)
def test_smoke_run_for_every_family(overrides, tmp_path):
    # two training batches: a complete run of the family (test_recipes trains each for real)
    cfg = compose(
        [*overrides, "experiment=smoke", "trainer.epochs=1", "trainer.limit_train_batches=2", *CPU]
    )
    result = train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and result.summary["epochs_completed"] == 1
    assert summary["params"] > 0 and summary["flops"] > 0
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0


@pytest.mark.slow
def test_smoke_experiment_through_the_command_line(tmp_path, monkeypatch, capsys):
    """`imgcls train model=lenet experiment=smoke` as typed, with its default output folder
    (in-process: the real program's start-up and training are tested where they are the
    subject, in tests/test_resume.py, tests/test_safety_signals.py and tests/test_cli.py)."""
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "model=lenet", "experiment=smoke"])
    assert code == 0, capsys.readouterr().err
    (summary_path,) = tmp_path.glob("outputs/*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["model"] == "lenet"
    assert summary["epochs_completed"] == 2 and summary["flops"] > 0
