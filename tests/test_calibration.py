"""Calibration: ECE, MCE, NLL and Brier against computations by hand, the temperature fit on
synthetic logits, and ``calibrate=temperature`` end to end — fitted at the end of a tiny run,
stored in best.pt and summary.json, applied alike by eval, predict run=, the exported ONNX
graph and predict model=, and fitted afterwards by ``eval calibrate=temperature``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PLOTS, TINY
from PIL import Image

from imgcls import cli
from imgcls.app.build import build_dataset
from imgcls.app.inference import load_run
from imgcls.base.checkpoint import load_checkpoint, save_checkpoint
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.evaluate import calibration as calib

ON_CPU = "device=cpu"


# --- the figures ---------------------------------------------------------------------------


def reference_ece_mce(targets, probabilities, bins=15):
    """Guo et al.'s ECE and MCE written as a plain loop over the bins (m/M, (m+1)/M]."""
    confidence = [max(row) for row in probabilities]
    correct = [int(np.argmax(row)) == t for row, t in zip(probabilities, targets, strict=True)]
    n, ece, mce = len(targets), 0.0, 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        members = [i for i, c in enumerate(confidence) if lo < c <= hi]
        if not members:
            continue
        accuracy = sum(correct[i] for i in members) / len(members)
        mean_confidence = sum(confidence[i] for i in members) / len(members)
        gap = abs(accuracy - mean_confidence)
        ece += len(members) / n * gap
        mce = max(mce, gap)
    return ece, mce


def test_the_figures_of_four_images_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.62, 0.38], [0.3, 0.7]])
    targets = np.array([0, 1, 0, 1])
    figures = calib.calibration_figures(targets, probabilities)
    # bins: 0.9 (two images, one right: gap 0.4), 0.62 (right: 0.38), 0.7 (right: 0.3)
    assert figures["ece"] == pytest.approx((2 * 0.4 + 0.38 + 0.3) / 4, abs=1e-12)
    assert figures["mce"] == pytest.approx(0.4, abs=1e-12)
    nll = -(math.log(0.9) + math.log(0.1) + math.log(0.62) + math.log(0.7)) / 4
    assert figures["nll"] == pytest.approx(nll, abs=1e-12)
    # Brier: the sum over classes of (p - onehot)^2, averaged over images
    assert figures["brier"] == pytest.approx((0.02 + 1.62 + 2 * 0.38**2 + 2 * 0.3**2) / 4)


def test_ece_and_mce_equal_a_loop_over_the_bins_on_fixed_probabilities():
    rng = np.random.default_rng(7)
    probabilities = rng.dirichlet(np.full(5, 0.4), size=300)
    targets = rng.integers(0, 5, 300)
    targets[:150] = probabilities[:150].argmax(1)  # half right: a gap that is not uniform
    figures = calib.calibration_figures(targets, probabilities)
    ece, mce = reference_ece_mce(targets.tolist(), probabilities.tolist())
    assert figures["ece"] == pytest.approx(ece, abs=1e-12)
    assert figures["mce"] == pytest.approx(mce, abs=1e-12)
    assert 0.05 < ece < mce  # a real test: neither figure is trivially 0
    table = calib.reliability(targets, probabilities)
    assert table.counts.sum() == 300 and len(table.counts) == 15


def test_multilabel_figures_are_those_of_each_image_label_decision():
    probabilities = np.array([[0.8, 0.3]])
    targets = np.array([[1, 0]])
    figures = calib.calibration_figures(targets, probabilities)
    # two right decisions at confidences 0.8 and 0.7 (= 1 - 0.3)
    assert figures["ece"] == pytest.approx((0.2 + 0.3) / 2)
    assert figures["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    assert figures["brier"] == pytest.approx((0.2**2 + 0.3**2) / 2)


# --- the temperature fit -------------------------------------------------------------------


@pytest.mark.parametrize("multilabel", [False, True])
def test_the_fit_recovers_a_known_temperature(multilabel):
    rng = np.random.default_rng(0)
    true_t = 2.5
    logits = rng.normal(0.0, 4.0, size=(20000, 5))
    if multilabel:
        targets = (rng.random(logits.shape) < calib.sigmoid(logits / true_t)).astype(np.float32)
    else:
        p = calib.softmax(logits / true_t)
        targets = (p.cumsum(1) < rng.random((len(p), 1))).sum(1)  # one draw per row
    t = calib.fit_temperature(logits, targets)
    assert abs(t - true_t) < 0.1, t
    # the NLL from the logits equals the NLL of the scaled probabilities, and T lowers it
    scaled = calib.scaled_probabilities(logits, t, multilabel)
    assert calib.scaled_nll(logits, targets, t) == pytest.approx(calib.nll(targets, scaled))
    assert calib.scaled_nll(logits, targets, t) < calib.scaled_nll(logits, targets, 1.0)


def test_a_stored_temperature_is_checked():
    assert calib.temperature_from_spec({}) == 1.0
    assert calib.temperature_from_spec({"temperature": 1.5}) == 1.5
    for bad in (0, -1.0, float("nan"), "2", True, [1.0]):
        with pytest.raises(UserError, match="temperature of the wrong form"):
            calib.temperature_from_spec({"temperature": bad}, "best.pt")


# --- end to end ----------------------------------------------------------------------------


def read_probabilities(path: Path) -> tuple[list[str], np.ndarray]:
    """predict's predictions.csv: file names and each image's top-k probabilities by class."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    k = sum(1 for c in rows[0] if c.endswith("_class"))
    names = [Path(r["file"]).name for r in rows]
    classes = sorted(r[f"top{i}_class"] for i in range(1, k + 1) for r in rows[:1])
    table = np.array([[float(r[f"top{i}_probability"]) for i in range(1, k + 1)] for r in rows])
    order = [[classes.index(r[f"top{i}_class"]) for i in range(1, k + 1)] for r in rows]
    out = np.zeros_like(table)
    for i, cols in enumerate(order):
        out[i, cols] = table[i]
    return names, out


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """(run dir, test split, a folder of its images as PNG files, the stored temperature)."""
    root = tmp_path_factory.mktemp("calibration")
    out = root / "outputs"
    assert cli.main(["train", *TINY, PLOTS, "calibrate=temperature", f"output_root={out}"]) == 0
    (summary,) = out.rglob("summary.json")
    run_dir = summary.parent
    test = build_dataset(compose(TINY)).test.materialize()
    pics = root / "pics"
    pics.mkdir()
    for i, image in enumerate(test.images[:24].numpy()):
        Image.fromarray(image[0], mode="L").save(pics / f"{i:03d}.png")
    stored = load_checkpoint(run_dir / "checkpoints" / "best.pt")["data"]["temperature"]
    return run_dir, test, pics, stored


def test_the_end_of_a_run_fits_stores_and_records_the_temperature(calibrated):
    run_dir, test, _, stored = calibrated
    summary = json.loads((run_dir / "summary.json").read_text())
    block = summary["calibration"]
    assert block["method"] == "temperature" and block["fitted_on"] == "val"
    assert block["temperature"] == stored and stored != 1.0
    # the test metrics stay the engine's (T changes no prediction); the figures before
    # scaling are summary.test's, those after are the test logits divided by T
    assert {"ece", "mce", "nll", "brier"} <= set(summary["test"])
    assert block["before"] == {k: summary["test"][k] for k in ("ece", "mce", "nll", "brier")}
    loaded = load_run(run_dir, device="cpu")
    assert loaded.temperature == stored
    with torch.inference_mode():
        logits = loaded.model(
            (test.images.float() / 255 - loaded.spec["mean"][0]) / loaded.spec["std"][0]
        )
    targets = test.labels.numpy()
    scaled = calib.scaled_probabilities(logits.double().numpy(), stored, False)
    assert block["after"]["ece"] == pytest.approx(
        calib.calibration_figures(targets, scaled)["ece"], abs=1e-5
    )
    assert summary["test"]["accuracy"] == pytest.approx((scaled.argmax(1) == targets).mean())
    assert (run_dir / "plots" / "reliability.png").is_file()
    html = (run_dir / "report.html").read_text()
    part = html[html.index('id="part-calibration"') :]
    assert f"after (T = {stored:.4f})" in part and "reliability diagram" in part


def test_eval_predict_and_onnx_predict_give_the_same_calibrated_probabilities(calibrated, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the 'export' extra (make setup installs it)")
    run_dir, test, pics, stored = calibrated
    assert cli.main(["eval", f"run={run_dir}", ON_CPU, f"out={tmp_path / 'eval'}"]) == 0
    # the TorchScript-based exporter, the quicker one (tests/test_export.py covers both)
    export = ["export", f"run={run_dir}", "exporter=torchscript", f"out={tmp_path / 'onnx'}"]
    assert cli.main(export) == 0
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["temperature"] == stored
    args = [f"images={pics}", ON_CPU, "topk=4"]
    assert cli.main(["predict", f"run={run_dir}", *args, f"out={tmp_path / 'torch'}"]) == 0
    model = tmp_path / "onnx" / "model.onnx"
    assert cli.main(["predict", f"model={model}", *args, f"out={tmp_path / 'ort'}"]) == 0

    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["temperature"] == stored
    evaluated = np.load(tmp_path / "eval" / "probabilities.npy")[:24]
    # the run's logits divided by T, computed here by hand
    loaded = load_run(run_dir, device="cpu")
    mean, std = loaded.spec["mean"][0], loaded.spec["std"][0]
    with torch.inference_mode():
        logits = loaded.model((test.images[:24].float() / 255 - mean) / std).double().numpy()
    np.testing.assert_allclose(evaluated, calib.softmax(logits / stored), atol=1e-6)
    assert not np.allclose(evaluated, calib.softmax(logits), atol=1e-3)  # T did something
    names, by_torch = read_probabilities(tmp_path / "torch" / "predictions.csv")
    onnx_names, by_onnx = read_probabilities(tmp_path / "ort" / "predictions.csv")
    assert names == onnx_names == [f"{i:03d}.png" for i in range(24)]
    classes = sorted(record["classes"])
    order = [record["classes"].index(c) for c in classes]  # predictions.csv: sorted by name
    np.testing.assert_allclose(by_torch, evaluated[:, order], atol=1e-6)
    np.testing.assert_allclose(by_onnx, evaluated[:, order], atol=1e-5)
    for folder in ("torch", "ort"):
        assert (
            json.loads((tmp_path / folder / "predictions.json").read_text())["temperature"]
            == stored
        )
    assert (tmp_path / "eval" / "reliability.png").is_file()
    everything = np.load(tmp_path / "eval" / "probabilities.npy")
    figures = calib.calibration_figures(test.labels.numpy(), everything)
    assert record["ece"] == pytest.approx(figures["ece"]) and record["nll"] == figures["nll"]


def test_eval_calibrates_a_finished_run_without_retraining(calibrated, tmp_path, capsys):
    # The calibrated run as calibrate=none leaves it (the weights are the same: calibration
    # comes after training): no temperature in best.pt, no calibration block in summary.json.
    run_dir = tmp_path / "run"
    shutil.copytree(calibrated[0], run_dir, ignore=shutil.ignore_patterns("eval", "export"))
    best = run_dir / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    del state["data"]["temperature"]
    save_checkpoint(best, state)
    summary_file = run_dir / "summary.json"
    before = json.loads(summary_file.read_text())
    del before["calibration"]
    summary_file.write_text(json.dumps(before))
    assert load_run(run_dir, device="cpu").temperature == 1.0
    capsys.readouterr()

    assert cli.main(["eval", f"run={run_dir}", ON_CPU, "calibrate=temperature"]) == 0
    printed = capsys.readouterr().out
    stored = load_checkpoint(best)["data"]["temperature"]
    after = json.loads(summary_file.read_text())
    block = after["calibration"]
    assert block["temperature"] == stored and block["split"] == "test"
    # the T of the run's validation split: the one the end of training fitted
    assert stored == pytest.approx(calibrated[3], rel=1e-4)
    val = build_dataset(compose(TINY)).val.materialize()
    loaded = load_run(run_dir, device="cpu")
    mean, std = loaded.spec["mean"][0], loaded.spec["std"][0]
    with torch.inference_mode():
        logits = loaded.model((val.images.float() / 255 - mean) / std).double().numpy()
    targets = val.labels.numpy()
    assert stored == pytest.approx(calib.fit_temperature(logits, targets), rel=1e-6)
    assert calib.scaled_nll(logits, targets, stored) < calib.scaled_nll(logits, targets, 1.0)
    # before scaling: the run's own test figures
    for key in ("ece", "mce", "nll", "brier"):
        assert block["before"][key] == pytest.approx(before["test"][key], abs=1e-6), key
    record = json.loads((run_dir / "eval" / "test_best" / "metrics.json").read_text())
    assert record["calibration"]["after"]["ece"] == pytest.approx(record["ece"])
    assert f"T = {stored:.4f} fitted on the validation split" in printed
    assert after["test"] == before["test"]  # the test metrics stay the engine's
    assert (run_dir / "eval" / "test_best" / "reliability.png").is_file()


def test_mistakes_are_one_line(calibrated, tmp_path, capsys):
    run_dir = calibrated[0]
    cases = [
        (["train", *TINY, "calibrate=sometimes", f"output_root={tmp_path / 'no'}"], "sometimes"),
        (["eval", f"run={run_dir}", "calibrate=platt"], "unknown calibrate 'platt'"),
        (["eval", f"run=[{run_dir},{run_dir}]", "calibrate=temperature"], "one run at a time"),
        (["eval", f"run={run_dir}", "checkpoint=last", "calibrate=temperature"], "checkpoint=last"),
    ]
    for args, words in cases:
        capsys.readouterr()
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
        if args[0] == "train":
            assert "none, temperature" in err
    assert not (tmp_path / "no").exists()


def test_a_multilabel_run_is_refused_before_anything_is_written(tmp_path, capsys):
    pytest.importorskip("onnxruntime")  # the module that fabricates the table needs it
    from test_multilabel_inference import write_table

    table = write_table(tmp_path)
    out = tmp_path / "outputs"
    args = [
        "train",
        "model=simplecnn",
        "model.widths=[8]",
        "model.hidden=16",
        "dataset=table",
        f"dataset.path={table}",
        "dataset.label_col=tags",
        "dataset.label_delim=|",
        "dataset.split_col=split",
        "dataset.image_size=8",
        "dataset.channels=1",
        "dataset.stats_images=8",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "trainer.device=cpu",
        "calibrate=temperature",
        f"output_root={out}",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "single-label runs" in err
    assert not out.exists() or not any(out.rglob("summary.json"))
