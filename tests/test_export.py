"""imgcls export (ONNX, TorchScript, .pt2) with its parity check, and predict model=<file.onnx>
without PyTorch.

Every model family's default variant is exported in-process (untrained, at 3x16x16); the
command line is tested on one tiny run with EMA weights, trained once for the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, cli_env
from omegaconf import OmegaConf
from PIL import Image

from imgcls import cli
from imgcls.app import export as export_module
from imgcls.app.export import TOLERANCE, check_parity, export_onnx, load_runner
from imgcls.app.inference import load_run
from imgcls.app.job import train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.files import config_dir, group_options
from imgcls.registry import MODELS

pytest.importorskip("onnxruntime", reason="needs the 'export' extra (make setup installs it)")

ON_CPU = "device=cpu"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run (1x8x8 synthetic images, 4 classes, 2 epochs) that keeps EMA weights."""
    root = tmp_path_factory.mktemp("export_run")
    return train(compose([*TINY, "trainer.ema.decay=0.8", f"output_root={root}"])).run_dir


@pytest.fixture(scope="module")
def onnx_export(run) -> Path:
    """``imgcls export run=<run>`` with every default: the ONNX model file."""
    assert cli.main(["export", f"run={run}"]) == 0
    return run / "export" / "onnx_best" / "model.onnx"


def one_line_error(capsys, args: list[str], message: str) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgcls: error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


# -- every model family --------------------------------------------------------------------
def default_model(family: str, shape: tuple[int, int, int]) -> torch.nn.Module:
    """conf/model/<family>.yaml's default variant, untrained, with its batch-norm statistics
    taken from a few random batches (fresh statistics leave some families' logits ~1e-13)."""
    node = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / f"{family}.yaml"))
    options = {k: v for k, v in node.items() if k not in ("defaults", "name")}
    c, h, w = shape
    torch.manual_seed(0)
    model = MODELS.build(node["name"], options, num_classes=5, in_channels=c, image_size=(h, w))
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.randn(16, *shape))
    return model.eval()


@pytest.mark.parametrize("family", group_options("model"))
def test_every_family_exports_to_onnx_and_passes_parity(family, tmp_path):
    shape = (3, 16, 16)
    model = default_model(family, shape)
    inputs = torch.randn(40, *shape, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "model.onnx"
    exporter, fallback = export_onnx(model, inputs[:2].clone(), path, "auto")
    parity = check_parity(model, load_runner("onnx", path), inputs, TOLERANCE)
    print(f"{family}: {exporter}, fallback {fallback}, max diff {parity['max_abs_diff']:.2e}")
    assert parity["batch_sizes"] == [1, 7, 32]  # not the traced 2: the batch is dynamic
    assert parity["passed"], parity
    assert parity["max_abs_diff"] <= TOLERANCE and parity["top1_agreement"] == 1.0


# ConvNeXt (layer norm channels-last and LayerNorm2d, GELU, depthwise 7x7) and a ViT
# (attention, layer norm, GELU), both with stochastic depth (identity in eval), as the issue
# asks; MobileNetV3 (hard-swish, squeeze-excitation) is model=torchvision's default above.
# timm's test-size models: torchvision's ConvNeXt-T (28M parameters) and ViT-B (86M) would
# cost tens of seconds each for the same operators.
MODERN = {
    "convnext": ("timm", {"variant": "test_convnext", "drop_path_rate": 0.1}),
    "vit": ("timm", {"variant": "test_vit", "drop_path_rate": 0.1}),
}


@pytest.mark.parametrize("case", list(MODERN))
def test_convnext_and_vit_export_to_onnx_and_pass_parity(case, tmp_path):
    pytest.importorskip("timm", reason="needs the 'timm' extra (make setup installs it)")
    name, options = MODERN[case]
    shape = (1, 32, 32)
    torch.manual_seed(0)
    model = MODELS.build(name, options, num_classes=5, in_channels=1, image_size=shape[1:])
    assert any("DropPath" in type(m).__name__ for m in model.modules())
    model.eval()
    inputs = torch.randn(40, *shape, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "model.onnx"
    exporter, fallback = export_onnx(model, inputs[:2].clone(), path, "auto")
    parity = check_parity(model, load_runner("onnx", path), inputs, TOLERANCE)
    assert exporter == "torch.onnx.export(dynamo=True)" and fallback is None
    assert parity["passed"] and parity["batch_sizes"] == [1, 7, 32], parity
    assert parity["max_abs_diff"] <= TOLERANCE and parity["top1_agreement"] == 1.0


# -- imgcls export on a run ------------------------------------------------------------------
def test_export_onnx_writes_the_model_and_export_json(run, onnx_export):
    import onnxruntime as ort

    info = json.loads((onnx_export.parent / "export.json").read_text())
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert info["format"] == "onnx" and info["file"] == "model.onnx"
    assert info["exporter"] == "torch.onnx.export(dynamo=True)"
    assert info["exporter_fallback"] is None
    assert isinstance(info["opset"], int) and info["opset"] >= 17
    assert info["classes"] == state["classes"] and info["num_classes"] == 4
    assert info["input_shape"] == [1, 8, 8] and info["channels"] == 1
    assert info["color_mode"] == "L" and info["image_size"] == [8, 8]
    assert info["mean"] == pytest.approx(state["data"]["mean"])
    assert info["std"] == pytest.approx(state["data"]["std"])
    assert info["resize"]["interpolation"] == "bilinear"
    source = info["source"]
    assert source["run"] == str(run) and source["checkpoint"] == "best"
    assert source["epoch"] == state["epoch"] and source["ema"] is True
    assert source["model"]["name"] == "simplecnn"
    parity = info["parity"]
    assert parity["source"] == "test set" and parity["dataset"] == "synthetic"
    assert parity["images"] == 36  # the whole test split (15% of 240), fewer than 256
    assert parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert {"torch", "onnx", "onnxruntime"} <= set(info["versions"])
    session = ort.InferenceSession(str(onnx_export), providers=["CPUExecutionProvider"])
    (images,) = session.get_inputs()
    assert images.name == "images" and isinstance(images.shape[0], str)  # a dynamic batch
    assert images.shape[1:] == [1, 8, 8]
    assert not [p for p in onnx_export.parent.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("fmt", "suffix"), [("torchscript", ".pt"), ("pt2", ".pt2")])
def test_export_torchscript_and_pt2_run_any_batch_size(run, tmp_path, fmt, suffix, capsys):
    out = tmp_path / fmt
    assert cli.main(["export", f"run={run}", f"format={fmt}", f"out={out}"]) == 0
    assert "top-1 agreement 100%" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["export.json", f"model{suffix}"]
    info = json.loads((out / "export.json").read_text())
    assert info["format"] == fmt and info["opset"] is None and info["source"]["ema"] is True
    loaded = load_run(run, "best", "cpu")
    x = torch.randn(3, 1, 8, 8)
    runner = load_runner(fmt, out / f"model{suffix}")
    with torch.no_grad():
        expected = loaded.model(x).numpy()
    assert np.abs(runner(x.numpy()) - expected).max() <= 1e-5


def test_export_last_checkpoint_with_the_torchscript_onnx_exporter(run, tmp_path):
    out = tmp_path / "last"
    args = ["export", f"run={run}", "checkpoint=last", "exporter=torchscript", f"out={out}"]
    assert cli.main(args) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["exporter"] == "torch.onnx.export(dynamo=False)"
    assert info["source"]["checkpoint"] == "last"
    assert info["source"]["checkpoint_file"].endswith("last.pt")
    assert info["source"]["epoch"] == 2


def test_eval_and_predict_load_the_ema_weights(run):
    """The weights summary.json's test metrics came from, not the raw training weights."""
    loaded = load_run(run, "best", "cpu")
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert loaded.ema
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state["ema"]["model"][key]), key
    assert any(not torch.equal(state["model"][k], state["ema"]["model"][k]) for k in state["model"])


def test_bad_export_arguments_are_one_line_and_write_nothing(run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    before = sorted(p.name for p in run.iterdir())
    one_line_error(
        capsys,
        ["export", f"run={run}", "format=tflite"],
        "unknown format 'tflite'; available: onnx, pt2, torchscript",
    )
    one_line_error(capsys, ["export", f"run={tmp_path}/nope"], "run directory not found")
    one_line_error(capsys, ["export", "format=onnx"], "imgcls export needs run=<run dir>")
    one_line_error(
        capsys, ["export", f"run={run}", "exporter=tf2onnx"], "unknown exporter 'tf2onnx'"
    )
    one_line_error(
        capsys, ["export", f"run={run}", "format=pt2", "exporter=dynamo"], "format=onnx only"
    )
    one_line_error(capsys, ["export", f"run={run}", "fromat=onnx"], "did you mean 'format'")
    one_line_error(capsys, ["export", f"run={run}", "checkpoint=x.pt"], "checkpoint=x.pt not found")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    one_line_error(capsys, ["export", f"run={run}", f"out={tmp_path / 'busy'}"], "is not empty")
    assert sorted(p.name for p in run.iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]


def test_export_help_lists_its_keys(capsys):
    assert cli.main(["export", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in ("run", "checkpoint", "format", "exporter", "out"))


# -- parity: the check can fail ---------------------------------------------------------------
def perturbed(monkeypatch, change):
    """Make the exported model's logits ``change(logits)`` when parity loads it back."""
    real = export_module.load_runner

    def load(fmt, path):
        runner = real(fmt, path)
        return lambda batch: change(np.asarray(runner(batch)))

    monkeypatch.setattr(export_module, "load_runner", load)


def test_parity_failure_is_one_line_and_writes_nothing(run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    before = {p.name for p in (run / "export").iterdir()} if (run / "export").exists() else set()
    perturbed(monkeypatch, lambda logits: logits + np.float32(2e-4))
    err = one_line_error(
        capsys, ["export", f"run={run}", "checkpoint=last"], "export failed the parity check"
    )
    assert "logits differ from PyTorch's by up to 0.0002" in err and "top-1" not in err
    assert "nothing was written" in err
    after = {p.name for p in (run / "export").iterdir()} if (run / "export").exists() else set()
    assert after == before  # no onnx_last folder, no staging folder
    # a changed top-1 fails however small the logit difference is allowed to be
    perturbed(monkeypatch, lambda logits: logits[:, ::-1].copy())
    out = tmp_path / "flipped"
    with pytest.raises(UserError, match=r"model's top-1 prediction differs on \d+ of 36 images;"):
        export_module.export_run(run, "best", "pt2", out, tolerance=1e3)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_difference_within_the_tolerance_passes(run, tmp_path, monkeypatch):
    perturbed(monkeypatch, lambda logits: logits + np.float32(5e-5))
    out = tmp_path / "ok"
    assert cli.main(["export", f"run={run}", "format=torchscript", f"out={out}"]) == 0
    diff = json.loads((out / "export.json").read_text())["parity"]["max_abs_diff"]
    assert 4e-5 < diff <= 1e-4


def test_random_inputs_when_the_dataset_is_not_available(run, tmp_path, monkeypatch):
    def missing(cfg):
        raise UserError("the dataset files are not in data/: put them there")

    monkeypatch.setattr(export_module, "build_dataset", missing)
    out = tmp_path / "random"
    assert cli.main(["export", f"run={run}", "format=torchscript", f"out={out}"]) == 0
    parity = json.loads((out / "export.json").read_text())["parity"]
    assert parity["source"] == "random inputs" and parity["images"] == 256
    assert "dataset files are not in data/" in parity["reason"]


def test_export_into_an_earlier_export_replaces_it(run, tmp_path):
    out = tmp_path / "again"
    assert cli.main(["export", f"run={run}", "format=torchscript", f"out={out}"]) == 0
    assert cli.main(["export", f"run={run}", "format=pt2", f"out={out}"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.pt2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


# -- the ONNX exporter falls back -------------------------------------------------------------
def test_onnx_falls_back_to_the_torchscript_exporter_and_says_so(
    run, tmp_path, capsys, monkeypatch
):
    def broken(model, example, path):
        raise RuntimeError("dynamo cannot trace this model\nsecond line")

    monkeypatch.setitem(export_module.ONNX_EXPORTERS, "dynamo", broken)
    out = tmp_path / "fallback"
    assert cli.main(["export", f"run={run}", f"out={out}"]) == 0
    err = capsys.readouterr().err
    assert "torch.onnx.export(dynamo=True) ONNX exporter failed" in err
    assert "exported with torch.onnx.export(dynamo=False) instead" in err
    info = json.loads((out / "export.json").read_text())
    assert info["exporter"] == "torch.onnx.export(dynamo=False)"
    assert info["exporter_fallback"] == {
        "from": "torch.onnx.export(dynamo=True)",
        "reason": "RuntimeError: dynamo cannot trace this model",
    }
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    one_line_error(  # the exporter named: no fallback
        capsys,
        ["export", f"run={run}", "exporter=dynamo", f"out={tmp_path / 'no'}"],
        "cannot export the model to ONNX (exporter=auto tries both)",
    )
    assert not (tmp_path / "no").exists()


def test_a_missing_extra_names_it(run, tmp_path, capsys, monkeypatch, onnx_export):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    hint = "needs the 'export' extra (onnxruntime is not installed): pip install 'imgcls[export]'"
    one_line_error(capsys, ["export", f"run={run}", f"out={tmp_path / 'x'}"], hint)
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(pics / "a.png")
    one_line_error(capsys, ["predict", f"model={onnx_export}", f"images={pics}"], hint)
    assert not (tmp_path / "x").exists() and not (onnx_export.parent / "predict").exists()


# -- predict model=<file.onnx> ----------------------------------------------------------------
def image_folder(folder: Path) -> None:
    """Test-set images as PNG, and files of other sizes and modes (resized and converted)."""
    folder.mkdir()
    from imgcls.app.build import build_dataset

    test = build_dataset(compose([*TINY])).test.images[:6, 0].numpy()
    for i, image in enumerate(test):
        Image.fromarray(image).save(folder / f"test{i}.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 13, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (9, 9, 4), dtype=np.uint8), "RGBA").save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (31, 40), dtype=np.uint8)).save(folder / "big.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")


NO_TORCH = """
import sys
from imgcls import cli
code = cli.main(["predict", "model={model}", "images={images}", "out={out}", "topk=4"])
print("RESULT", code, "torch" in sys.modules, "torchvision" in sys.modules)
"""


def test_onnx_predict_imports_no_torch_and_matches_predict_run(run, onnx_export, tmp_path):
    images, onnx_out, torch_out = tmp_path / "pics", tmp_path / "onnx", tmp_path / "torch"
    image_folder(images)
    script = NO_TORCH.format(model=onnx_export, images=images, out=onnx_out)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    assert "RESULT 0 False False" in result.stdout, result.stdout + result.stderr
    assert "skipped" in result.stderr and "corrupt.png" in result.stderr
    args = ["predict", f"run={run}", f"images={images}", f"out={torch_out}", "topk=4", ON_CPU]
    assert cli.main(args) == 0
    onnx_doc = json.loads((onnx_out / "predictions.json").read_text())
    torch_doc = json.loads((torch_out / "predictions.json").read_text())
    assert onnx_doc["model"] == str(onnx_export) and onnx_doc["run"] == str(run)
    assert (
        onnx_doc["classes"] == torch_doc["classes"] and onnx_doc["skipped"] == torch_doc["skipped"]
    )
    assert len(onnx_doc["predictions"]) == len(torch_doc["predictions"]) == 9
    for ours, theirs in zip(onnx_doc["predictions"], torch_doc["predictions"], strict=True):
        assert ours["file"] == theirs["file"]
        assert ours["prediction"] == theirs["prediction"]
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)
        probs = {t["class"]: t["probability"] for t in theirs["top"]}
        for entry in ours["top"]:
            assert entry["probability"] == pytest.approx(probs[entry["class"]], abs=1e-4)
    header = (onnx_out / "predictions.csv").read_text().splitlines()[0]
    assert header == (torch_out / "predictions.csv").read_text().splitlines()[0]


def test_onnx_predict_with_flip_tta_matches_predict_run(run, onnx_export, tmp_path):
    images = tmp_path / "pics"
    image_folder(images)
    docs = []
    for source in (f"model={onnx_export}", f"run={run}"):
        out = tmp_path / source.split("=")[0]
        assert cli.main(["predict", source, f"images={images}", f"out={out}", "tta=flip"]) == 0
        docs.append(json.loads((out / "predictions.json").read_text())["predictions"])
    for ours, theirs in zip(*docs, strict=True):
        assert ours["prediction"] == theirs["prediction"]
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)


def test_onnx_predict_mistakes_are_one_line(run, onnx_export, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(pics / "a.png")
    one_line_error(
        capsys, ["predict", f"model={tmp_path}/nope.onnx", f"images={pics}"], "model file not found"
    )
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"x")
    one_line_error(capsys, ["predict", f"model={pt}", f"images={pics}"], "is not an ONNX file")
    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    lone.write_bytes(onnx_export.read_bytes())
    one_line_error(capsys, ["predict", f"model={lone}", f"images={pics}"], "no export.json beside")
    (lone.parent / "export.json").write_text(
        (onnx_export.parent / "export.json").read_text().replace('"channels": 1', '"channels": 3')
    )
    one_line_error(capsys, ["predict", f"model={lone}", f"images={pics}"], "wrong form")
    both = ["predict", f"run={run}", f"model={onnx_export}", f"images={pics}"]
    one_line_error(capsys, both, "not both")
    one_line_error(
        capsys,
        ["predict", f"model={onnx_export}", f"images={pics}", "checkpoint=last"],
        "checkpoint= goes with run=",
    )
    one_line_error(
        capsys, ["predict", f"model={onnx_export}", f"images={pics}", "device=mps"], "device=mps"
    )
    assert not (onnx_export.parent / "predict").exists()
