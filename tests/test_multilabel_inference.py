"""eval, predict run= and predict model=<file.onnx> of a multi-label run: sigmoid
probabilities, and label sets decided by the thresholds stored in best.pt, the same on all three.

One tiny multi-label run for the module (the synthetic dataset relabelled with multi-hot rows,
as in test_multilabel_run.py), its test images written as PNG files, and one ONNX export.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ONE_EPOCH
from PIL import Image

from imgcls import cli
from imgcls.app import build, evaluation
from imgcls.app.job import train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.config.compose import compose
from imgcls.data.splits import DataSplits, ImageSet
from imgcls.data.targets import MULTILABEL
from imgcls.evaluate.multilabel import SET_SEPARATOR, multilabel_metrics, predict_labels

pytest.importorskip("onnxruntime", reason="needs the 'export' extra (make setup installs it)")

ON_CPU = "device=cpu"


def multi_hot(images: ImageSet, num_classes: int) -> ImageSet:
    """Each image keeps its class and every other image also carries the next class."""
    classes = images.labels.long()
    rows = torch.nn.functional.one_hot(classes, num_classes).float()
    second = torch.arange(len(classes)) % 2 == 0
    rows[second, (classes[second] + 1) % num_classes] = 1.0
    return ImageSet(images.images, rows)


@pytest.fixture(scope="module")
def multilabel_data():
    """While the module runs, the run's dataset (for train and eval) is multi-label."""
    original = build.build_dataset

    def multilabel_dataset(cfg) -> DataSplits:
        data = original(cfg)
        c = data.num_classes
        return replace(
            data,
            train=multi_hot(data.train, c),
            val=multi_hot(data.val, c),
            test=multi_hot(data.test, c),
            task=MULTILABEL,
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "build_dataset", multilabel_dataset)
        patch.setattr(evaluation, "build_dataset", multilabel_dataset)
        yield multilabel_dataset, original


@pytest.fixture(scope="module")
def run(multilabel_data, tmp_path_factory):
    """(run dir, the test split, a folder of its images as PNGs in split order, thresholds)."""
    multilabel_dataset, _ = multilabel_data
    root = tmp_path_factory.mktemp("multilabel_inference")
    cfg = compose([*ONE_EPOCH, f"output_root={root}"])
    result = train(cfg)
    test = multilabel_dataset(cfg).test
    pics = root / "pics"
    pics.mkdir()
    for i, image in enumerate(test.images[:, 0].numpy()):
        Image.fromarray(image).save(pics / f"test{i:03d}.png")
    thresholds = np.asarray(load_checkpoint(result.folder.best_checkpoint)["data"]["thresholds"])
    return result.run_dir, test, pics, thresholds


@pytest.fixture(scope="module")
def onnx_model(run) -> Path:
    run_dir = run[0]
    assert cli.main(["export", f"run={run_dir}"]) == 0
    return run_dir / "export" / "onnx_best" / "model.onnx"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def label_sets(rows: list[dict[str, str]]) -> list[str]:
    return [row["prediction"] for row in rows]


def expected_sets(probabilities: np.ndarray, thresholds: np.ndarray, classes: list[str]) -> list:
    chosen = predict_labels(probabilities, thresholds)
    return [SET_SEPARATOR.join(classes[c] for c in np.flatnonzero(row)) for row in chosen]


def test_eval_predict_and_onnx_predict_apply_the_stored_thresholds(run, onnx_model, tmp_path):
    run_dir, test, pics, thresholds = run
    assert cli.main(["eval", f"run={run_dir}", ON_CPU, f"out={tmp_path / 'eval'}"]) == 0
    args = [f"images={pics}", ON_CPU]
    assert cli.main(["predict", f"run={run_dir}", *args, f"out={tmp_path / 'torch'}"]) == 0
    assert cli.main(["predict", f"model={onnx_model}", *args, f"out={tmp_path / 'onnx'}"]) == 0

    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    classes = record["classes"]
    evaluated = read_csv(tmp_path / "eval" / "predictions.csv")
    by_torch = read_csv(tmp_path / "torch" / "predictions.csv")
    by_onnx = read_csv(tmp_path / "onnx" / "predictions.csv")
    assert len(evaluated) == len(by_torch) == len(by_onnx) == len(test)
    assert [Path(r["file"]).name for r in by_onnx] == [p.name for p in sorted(pics.iterdir())]

    # The three give the same label sets: probability >= the thresholds stored in best.pt.
    columns = [f"probability_{c}" for c in classes]
    probabilities = np.array([[float(r[c]) for c in columns] for r in evaluated])
    assert ((probabilities > 0) & (probabilities < 1)).all()  # sigmoid outputs
    onnx_probabilities = np.array([[float(r[c]) for c in columns] for r in by_onnx])
    torch_probabilities = np.array([[float(r[c]) for c in columns] for r in by_torch])
    np.testing.assert_allclose(torch_probabilities, probabilities, atol=1e-6)
    np.testing.assert_allclose(onnx_probabilities, probabilities, atol=1e-4)
    noise = np.abs(onnx_probabilities - probabilities).max()
    assert np.abs(probabilities - thresholds).min() > 10 * noise  # agreement is not luck
    stored = expected_sets(probabilities, thresholds, classes)
    assert label_sets(evaluated) == label_sets(by_torch) == label_sets(by_onnx) == stored
    assert stored != expected_sets(probabilities, np.full(len(classes), 0.5), classes)
    assert record["thresholds"] == thresholds.tolist()

    # predictions.json names the thresholds applied; each record lists its labels.
    for folder in ("torch", "onnx"):
        document = json.loads((tmp_path / folder / "predictions.json").read_text())
        assert document["task"] == MULTILABEL
        assert list(document["thresholds"].values()) == thresholds.tolist()
        first = document["predictions"][0]
        assert [t["class"] for t in first["labels"]] == stored[0].split(SET_SEPARATOR)

    # eval's metrics are multilabel_metrics of its predictions.csv at those thresholds.
    targets = np.zeros_like(probabilities)
    for i, row in enumerate(evaluated):
        targets[i, [int(c) for c in row["target_indices"].split()]] = 1
    np.testing.assert_array_equal(targets, test.labels.numpy())
    expected = multilabel_metrics(targets, probabilities, classes, thresholds)
    for key in ("map", "f1_micro", "f1_macro", "subset_accuracy", "hamming_loss", "accuracy"):
        assert record[key] == pytest.approx(expected[key], abs=1e-9), key
    assert record["per_label"] == expected["per_label"]  # probabilities.csv reads back exactly
    per_class = read_csv(tmp_path / "eval" / "per_class.csv")
    assert [float(r["threshold"]) for r in per_class] == thresholds.tolist()


def test_eval_and_predict_print_the_multilabel_figures_and_label_sets(run, tmp_path, capsys):
    run_dir, _, pics, _ = run
    assert cli.main(["eval", f"run={run_dir}", ON_CPU, f"out={tmp_path / 'eval'}"]) == 0
    printed = capsys.readouterr().out
    for column in ("mAP", "micro F1", "macro F1", "subset accuracy", "Hamming loss", "AP"):
        assert column in printed
    assert "per label" in printed and "confusion" not in printed
    out = tmp_path / "pics_out"
    assert cli.main(["predict", f"run={run_dir}", f"images={pics}", ON_CPU, f"out={out}"]) == 0
    printed = capsys.readouterr().out
    first = json.loads((out / "predictions.json").read_text())["predictions"][0]
    shown = sorted(first["labels"], key=lambda t: -t["probability"])
    assert ", ".join(f"{t['class']} {t['probability']:.3f}" for t in shown) in printed


def test_export_json_carries_the_task_and_thresholds(run, onnx_model):
    import onnxruntime as ort

    run_dir, test, _, thresholds = run
    info = json.loads((onnx_model.parent / "export.json").read_text())
    assert info["task"] == MULTILABEL and info["thresholds"] == thresholds.tolist()
    assert info["output_name"] == "probabilities" and "sigmoid" in info["output"]
    session = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_of_a_multilabel_run_gives_probabilities(run, tmp_path):
    run_dir, test, _, thresholds = run
    out = tmp_path / "ts"
    assert cli.main(["export", f"run={run_dir}", "format=torchscript", f"out={out}"]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["task"] == MULTILABEL and info["thresholds"] == thresholds.tolist()
    module = torch.jit.load(str(out / "model.pt"))
    mean = torch.tensor(info["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(info["std"]).view(1, -1, 1, 1)
    with torch.inference_mode():
        outputs = module((test.images.float() / 255 - mean) / std)
    assert ((outputs > 0) & (outputs < 1)).all()


def test_multilabel_eval_mistakes_are_one_line(run, multilabel_data, capsys, monkeypatch):
    run_dir = run[0]
    assert cli.main(["eval", f"run={run_dir}", "topk=[1,3]", ON_CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "topk= applies to single-label runs" in err
    monkeypatch.setattr(evaluation, "build_dataset", multilabel_data[1])  # one label per image
    assert cli.main(["eval", f"run={run_dir}", ON_CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a multilabel model but the dataset's labels" in err
    assert not (run_dir / "eval").exists()
