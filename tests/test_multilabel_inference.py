"""eval, predict run= and predict model=<file.onnx> of a multi-label run: sigmoid
probabilities, and label sets decided by the thresholds stored in best.pt, the same on all three.

One tiny multi-label run for the module, trained as a new user would: ``dataset=table`` on a
label table of PNG files with several labels per cell (``label_delim``) and a split column;
then eval on its test split, predict on the test split's files, and one ONNX export.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CPU
from PIL import Image

from imgcls import cli
from imgcls.app import evaluation
from imgcls.app.build import build_dataset
from imgcls.app.evaluation import combine_multilabel
from imgcls.app.inference import load_run
from imgcls.base.checkpoint import load_checkpoint
from imgcls.config.compose import compose
from imgcls.data.targets import MULTICLASS, MULTILABEL
from imgcls.evaluate.multilabel import SET_SEPARATOR, multilabel_metrics, predict_labels

pytest.importorskip("onnxruntime", reason="needs the 'export' extra (make setup installs it)")

ON_CPU = "device=cpu"
TAGS = ["cat", "dog", "sky", "tree"]  # each brightens one quadrant of an 8x8 image
SPLITS = {"train": 48, "val": 16, "test": 16}


def write_table(root: Path) -> Path:
    """labels.csv (image, tags joined by '|', split) and its 8x8 grayscale PNGs under
    images/<split>/; every image carries one to three tags."""
    rng = np.random.default_rng(0)
    rows = ["image,tags,split"]
    for split, count in SPLITS.items():
        (root / "images" / split).mkdir(parents=True)
        for i in range(count):
            tags = sorted(rng.choice(len(TAGS), size=rng.integers(1, 4), replace=False))
            pixels = rng.integers(0, 90, (8, 8))
            for t in tags:
                pixels[4 * (t // 2) : 4 * (t // 2) + 4, 4 * (t % 2) : 4 * (t % 2) + 4] += 120
            name = f"images/{split}/{split}{i:03d}.png"
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / name)
            rows.append(f"{name},{'|'.join(TAGS[t] for t in tags)},{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "labels.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(run dir, the test split, its folder of PNGs, the thresholds stored in best.pt)."""
    root = tmp_path_factory.mktemp("multilabel_inference")
    table = write_table(root)
    overrides = [
        "model=simplecnn",
        "model.widths=[8,16]",
        "model.hidden=32",
        "dataset=table",
        f"dataset.path={table}",
        "dataset.label_col=tags",
        "dataset.label_delim=|",
        "dataset.split_col=split",
        "dataset.image_size=8",
        "dataset.channels=1",
        "dataset.stats_images=8",
        "trainer.epochs=2",
        "trainer.batch_size=16",
        *CPU,
    ]
    out = root / "outputs"
    assert cli.main(["train", *overrides, f"output_root={out}"]) == 0
    (summary,) = out.rglob("summary.json")
    run_dir = summary.parent
    test = build_dataset(compose(overrides)).test
    stored = load_checkpoint(run_dir / "checkpoints" / "best.pt")["data"]["thresholds"]
    tuned = json.loads(summary.read_text())["thresholds"]  # tuned on the validation split
    assert list(tuned.values()) == stored
    return run_dir, test, root / "images" / "test", np.asarray(stored)


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
    # Row i of each is the test split's image i (its files, in split order, sort by name).
    names = [Path(path).name for path in test.paths]
    assert names == sorted(names) == [p.name for p in sorted(pics.iterdir())]
    assert [Path(r["file"]).name for r in by_onnx] == [Path(r["file"]).name for r in by_torch]
    assert [Path(r["file"]).name for r in by_onnx] == names

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
    inputs = (test.materialize().images.float() / 255 - mean) / std
    with torch.inference_mode():
        outputs = module(inputs)
        logits = load_run(run_dir, device="cpu").model(inputs)
    torch.testing.assert_close(outputs, logits.sigmoid(), atol=1e-6, rtol=0)


def test_multilabel_eval_mistakes_are_one_line(run, capsys, monkeypatch):
    run_dir = run[0]
    assert cli.main(["eval", f"run={run_dir}", "topk=[1,3]", ON_CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "topk= applies to single-label runs" in err

    def one_label_per_image(cfg):
        return replace(build_dataset(cfg), task=MULTICLASS)

    monkeypatch.setattr(evaluation, "build_dataset", one_label_per_image)
    assert cli.main(["eval", f"run={run_dir}", ON_CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a multilabel model but the dataset's labels" in err
    assert not (run_dir / "eval").exists()


def test_a_damaged_export_json_is_one_line(run, onnx_model, tmp_path, capsys):
    pics = run[2]
    info = json.loads((onnx_model.parent / "export.json").read_text())
    for key, value, message in (
        ("thresholds", [0.5], "has data.thresholds of the wrong form: expected a list of 4"),
        ("task", "multi", "has task='multi': expected multiclass or multilabel"),
    ):
        folder = tmp_path / key
        folder.mkdir()
        (folder / "model.onnx").write_bytes(onnx_model.read_bytes())
        (folder / "export.json").write_text(json.dumps({**info, key: value}))
        args = ["predict", f"model={folder / 'model.onnx'}", f"images={pics}"]
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (folder / "predict").exists()


def test_a_multilabel_ensemble_averages_probabilities_and_thresholds_or_votes():
    a = np.array([[0.9, 0.2], [0.4, 0.6]])
    b = np.array([[0.7, 0.4], [0.2, 0.2]])
    t_a, t_b = np.array([0.5, 0.3]), np.array([0.3, 0.5])
    probabilities, thresholds = combine_multilabel([a, b], [t_a, t_b], "mean")
    np.testing.assert_allclose(probabilities, [[0.8, 0.3], [0.3, 0.4]])
    np.testing.assert_allclose(thresholds, [0.4, 0.4])
    votes, cut = combine_multilabel([a, b], [t_a, t_b], "vote")
    np.testing.assert_allclose(votes, [[1.0, 0.0], [0.0, 0.5]])  # a gives label 1 to image 1
    np.testing.assert_allclose(cut, [0.5, 0.5])


def test_an_ensemble_of_a_run_with_itself_gives_the_run_label_sets(run, tmp_path):
    run_dir = run[0]
    assert cli.main(["eval", f"run={run_dir}", ON_CPU, f"out={tmp_path / 'one'}"]) == 0
    both = f"run=[{run_dir},{run_dir}]"
    assert cli.main(["eval", both, "mode=vote", ON_CPU, f"out={tmp_path / 'two'}"]) == 0
    one = read_csv(tmp_path / "one" / "predictions.csv")
    two = read_csv(tmp_path / "two" / "predictions.csv")
    assert label_sets(one) == label_sets(two)
    record = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert record["mode"] == "vote" and len(record["members"]) == 2
