"""imgcls eval / predict and the end-of-run plots, on two tiny runs trained once per module."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import PLOTS, TINY
from PIL import Image

from imgcls import cli
from imgcls.app.job import train
from imgcls.config.compose import compose

# eval and predict pick the GPU by default; comparisons between their outputs are made on
# the CPU, where a different batch composition cannot change the arithmetic (TF32, cuDNN).
ON_CPU = "device=cpu"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two tiny runs (seeds 0 and 1) on 1x8x8 synthetic images, 4 classes."""
    root = tmp_path_factory.mktemp("eval_runs")
    return [
        train(compose([*TINY, PLOTS, f"seed={seed}", f"output_root={root}"])).run_dir
        for seed in (0, 1)
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def assert_png(path: Path, min_bytes: int = 5000) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > min_bytes, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 5.0, f"{path} looks blank"


def test_every_run_writes_its_plots(runs):
    for run in runs:
        for name in ("curves.png", "confusion_matrix.png", "predictions.png"):
            assert_png(run / "plots" / name)


def test_eval_metrics_equal_sklearn_on_predictions_csv(runs, tmp_path, capsys):
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    out = tmp_path / "eval"
    assert cli.main(["eval", f"run={runs[0]}", "topk=[1,2,3]", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "per class" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_csv(out / "predictions.csv")
    y = np.array([int(r["target"]) for r in rows])
    p = np.array([int(r["prediction"]) for r in rows])
    assert len(rows) == metrics["samples"] == 36
    assert metrics["accuracy"] == accuracy_score(y, p)
    for k in (2, 3):
        top = np.array([[int(r[f"top{i}_class"]) for i in range(1, k + 1)] for r in rows])
        assert metrics[f"top{k}_accuracy"] == pytest.approx(np.mean((top == y[:, None]).any(1)))
    labels = list(range(4))
    for average in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(
            y, p, labels=labels, average=average, zero_division=0
        )
        assert metrics[f"precision_{average}"] == pr
        assert metrics[f"recall_{average}"] == rc
        assert metrics[f"f1_{average}"] == f1
    pr, rc, f1, support = precision_recall_fscore_support(
        y, p, labels=labels, average=None, zero_division=0
    )
    per_class = read_csv(out / "per_class.csv")
    for i, row in enumerate(metrics["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == (
            pr[i],
            rc[i],
            f1[i],
            support[i],
        )
        assert float(per_class[i]["f1"]) == f1[i]
    matrix = confusion_matrix(y, p, labels=labels)
    assert metrics["confusion_matrix"] == matrix.tolist()
    table = list(csv.reader((out / "confusion_matrix.csv").open()))[1:]
    written = [[int(v) for v in r[1:]] for r in table]
    assert written == matrix.tolist()
    # the probabilities behind the predictions: top-1 is the argmax, rows sum to one
    probabilities = np.load(out / "probabilities.npy")
    assert (probabilities.argmax(1) == p).all()
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert float(rows[0]["top1_probability"]) == pytest.approx(probabilities[0].max())
    assert "precision" in (out / "classification_report.txt").read_text()
    assert_png(out / "confusion_matrix.png")
    assert_png(out / "predictions.png")


def test_eval_defaults_write_into_the_run(runs):
    assert cli.main(["eval", f"run={runs[1]}", "split=val", "checkpoint=last", "tta=flip"]) == 0
    out = runs[1] / "eval" / "val_last_tta-flip"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["tta"] == "flip"
    assert metrics["checkpoints"] == [str(runs[1] / "checkpoints" / "last.pt")]
    assert "top5_accuracy" not in metrics  # 4 classes: top-5 is meaningless


def test_ensemble_probabilities_are_the_mean_of_the_members(runs, tmp_path):
    members = []
    for i, run in enumerate(runs):
        assert cli.main(["eval", f"run={run}", f"out={tmp_path / str(i)}", ON_CPU]) == 0
        members.append(np.load(tmp_path / str(i) / "probabilities.npy"))
    assert not np.allclose(members[0], members[1])
    out = tmp_path / "ensemble"
    assert cli.main(["eval", f"run=[{runs[0]},{runs[1]}]", f"out={out}", ON_CPU]) == 0
    ensemble = np.load(out / "probabilities.npy")
    assert np.allclose(ensemble, (members[0] + members[1]) / 2, atol=1e-7)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "mean" and len(metrics["members"]) == 2
    for i, values in enumerate(metrics["members"].values()):
        alone = json.loads((tmp_path / str(i) / "metrics.json").read_text())
        assert values["accuracy"] == alone["accuracy"]
        assert values["f1_macro"] == alone["f1_macro"]


def test_vote_ensemble_predicts_the_majority():
    from imgcls.app.evaluation import combine

    a = np.array([[0.6, 0.4], [0.2, 0.8]])
    b = np.array([[0.7, 0.3], [0.45, 0.55]])
    c = np.array([[0.1, 0.9], [0.9, 0.1]])
    assert combine([a, b, c], "vote").argmax(1).tolist() == [0, 1]
    assert np.allclose(combine([a, b, c], "mean"), (a + b + c) / 3)


def _image_folder(folder: Path, dataset_image: np.ndarray) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(dataset_image).save(folder / "from_test_set.png")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 255, (9, 9, 4), dtype=np.uint8), "RGBA").save(folder / "a.png")
    (folder / "sub").mkdir()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "sub" / "g.jpeg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image file")


def test_predict_mixed_folder_with_a_corrupt_file(runs, tmp_path, capsys):
    from imgcls.app.build import build_dataset

    cfg = compose([*TINY])
    test_image = build_dataset(cfg).test.images[0, 0].numpy()
    folder = tmp_path / "pics"
    _image_folder(folder, test_image)
    out = tmp_path / "predicted"
    args = ["predict", f"run={runs[0]}", f"images={folder}", f"out={out}", "topk=2", ON_CPU]
    code = cli.main(args)
    assert code == 0
    captured = capsys.readouterr()
    assert "corrupt.png" in captured.err and "skipped" in captured.err
    assert "5 images classified, 1 skipped" in captured.out
    document = json.loads((out / "predictions.json").read_text())
    names = sorted(Path(r["file"]).name for r in document["predictions"])
    assert names == ["a.png", "from_test_set.png", "g.jpeg", "photo.jpg", "rgb.png"]
    assert [Path(s["file"]).name for s in document["skipped"]] == ["corrupt.png"]
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 5 and {"top1_class", "top2_probability"} <= set(rows[0])
    # an image of the test set, read back from a PNG, gets exactly eval's probabilities
    assert cli.main(["eval", f"run={runs[0]}", f"out={tmp_path / 'ev'}", ON_CPU]) == 0
    expected = np.load(tmp_path / "ev" / "probabilities.npy")[0]
    record = next(r for r in document["predictions"] if r["file"].endswith("from_test_set.png"))
    assert record["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert record["prediction"] == document["classes"][int(expected.argmax())]


def test_predict_a_glob(runs, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    # brackets are Hydra's list syntax: a glob that holds them is quoted, as for imgcls train
    images = f"images='{folder}/[01].png'"
    code = cli.main(["predict", f"run={runs[0]}", images, f"out={tmp_path}/o"])
    assert code == 0
    assert len(json.loads((tmp_path / "o" / "predictions.json").read_text())["predictions"]) == 2


def _one_line_error(capsys, args: list[str], message: str) -> None:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgcls: error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_bad_input_is_one_line_exit_2(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, ["eval", f"run={tmp_path}/empty"], "is not an imgcls run directory")
    _one_line_error(capsys, ["eval", f"run={tmp_path}/nope"], "run directory not found")
    _one_line_error(
        capsys, ["eval", f"run={runs[0]}", "dataset.num_classes=3"], "do not match the dataset's"
    )
    _one_line_error(capsys, ["eval", f"run={runs[0]}", "splt=val"], "did you mean 'split'")
    _one_line_error(capsys, ["eval", f"run={runs[0]}", "split=train"], "unknown split 'train'")
    _one_line_error(
        capsys, ["eval", f"run={runs[0]}", "checkpoint=x.pt"], "checkpoint=x.pt not found"
    )
    _one_line_error(
        capsys, ["predict", f"run={runs[0]}", f"images={tmp_path}/empty"], "no images found"
    )
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert cli.main(["predict", f"run={runs[0]}", f"images={tmp_path}/bad.png"]) == 2
    assert "none of the 1 files" in capsys.readouterr().err
    assert not (runs[0] / "eval" / "test_x").exists()
    assert not list(tmp_path.rglob("predictions.csv"))


def test_plots_false_skips_the_figures_and_keeps_the_metrics_and_report(tmp_path):
    run = train(compose([*TINY, "trainer.plots=false", f"output_root={tmp_path}"])).run_dir
    assert not list(run.rglob("*.png"))
    metrics = json.loads((run / "test_metrics.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert "confusion_matrix" in metrics and (run / "report.html").is_file()
