"""K-fold cross-validation (``dataset.folds=K dataset.fold=i``): the folds as functions on
arrays, the recut splits of real datasets, and one tiny 2-fold x 2-seed sweep shared by the
tests of its files (val_predictions.csv, oof_predictions.csv, oof_metrics.json, summary.json,
``imgcls report`` and the fold ensemble of ``imgcls eval``)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from test_table_dataset import write_images, write_table

from imgcls import cli
from imgcls.app import build
from imgcls.app.evaluation import evaluate_runs
from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder, SweepFolder
from imgcls.config.compose import compose
from imgcls.data.folds import apply_folds, fold_assignment, split_hash
from imgcls.data.splits import DataSplits, ImageSet
from imgcls.evaluate.out_of_fold import read_fold_predictions, write_fold_predictions

SKEWED = np.repeat(np.arange(4), [20, 13, 7, 31])  # class counts that K does not divide


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- the folds on arrays -----------------------------------------------------------------


def test_folds_partition_the_pool_and_are_stratified():
    labels = np.random.default_rng(1).permutation(SKEWED)
    assignment = fold_assignment(labels, 5, seed=3)
    assert sorted(set(assignment.tolist())) == [0, 1, 2, 3, 4]  # every image in one fold
    for c, count in enumerate(np.bincount(labels)):
        per_fold = np.bincount(assignment[labels == c], minlength=5)
        assert np.all(np.abs(per_fold - count / 5) <= 1), (c, per_fold)


def test_apply_folds_recuts_train_and_validation_only():
    labels = torch.from_numpy(SKEWED)
    images = torch.arange(len(SKEWED), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    pool = ImageSet(images.contiguous(), labels)
    train, val = pool.subset(np.arange(0, 71, 2)), pool.subset(np.arange(1, 71, 2))
    test = ImageSet(torch.full((6, 1, 2, 2), 200, dtype=torch.uint8), torch.arange(6) % 4)
    data = DataSplits("toy", train, val, test, list("abcd"), (0.5,), (0.2,))
    joined = train.join(val)
    held_out = []
    for fold in range(3):
        cut = apply_folds(data, 3, fold, seed=0)
        assert cut.test is test  # the test split is never touched
        assert cut.folds.split_hash == apply_folds(data, 3, 0, seed=0).folds.split_hash
        index = cut.folds.val_index
        assert torch.equal(cut.val.images, joined.images[torch.from_numpy(index)])
        assert len(cut.train) + len(cut.val) == len(joined) == cut.folds.pool_images
        assert cut.mean[0] == pytest.approx(cut.train.images.float().mean().item() / 255)
        held_out += index.tolist()
    assert sorted(held_out) == list(range(len(joined)))  # each pool image validated once


def test_the_split_hash_is_pinned_and_repeatable():
    labels = np.arange(30) % 3
    first = fold_assignment(labels, 3, seed=0)
    assert np.array_equal(first, fold_assignment(labels, 3, seed=0))
    # Pinned: another machine (or scikit-learn release) must cut the same folds.
    assert split_hash(first, labels) == "536e3dc514c12d1b"
    assert split_hash(fold_assignment(labels, 3, seed=1), labels) != "536e3dc514c12d1b"


def test_grouped_folds_keep_each_group_whole():
    groups = np.array([f"patient{i // 4}" for i in range(60)], dtype=object)
    labels = np.arange(60) % 3
    assignment = fold_assignment(labels, 4, seed=0, groups=groups)
    for group in np.unique(groups):
        assert len(set(assignment[groups == group].tolist())) == 1, group
    assert sorted(set(assignment.tolist())) == [0, 1, 2, 3]


def test_multilabel_folds_reach_every_label():
    rng = np.random.default_rng(0)
    hot = (rng.random((90, 5)) < [0.5, 0.3, 0.2, 0.1, 0.08]).astype(np.float32)
    hot[:8, 4] = 1.0  # the rare label has at least 8 images
    assignment = fold_assignment(hot, 3, seed=0)
    assert sorted(set(assignment.tolist())) == [0, 1, 2]
    for label in range(5):
        per_fold = np.bincount(assignment[hot[:, label] > 0.5], minlength=3)
        assert per_fold.min() >= 1 and per_fold.max() - per_fold.min() <= 2, (label, per_fold)


def test_iterative_stratification_spreads_every_label_evenly():
    """Each label's images per fold stay within one image of count / K, the folds keep equal
    sizes (rows without a label fill them), and the seed fixes the folds."""
    rng = np.random.default_rng(1)
    hot = rng.random((300, 6)) < [0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
    hot[::50] = False  # some rows carry no label
    assignment = fold_assignment(hot.astype(np.float32), 5, seed=0)
    per_fold = np.stack([hot[assignment == f].sum(axis=0) for f in range(5)])
    assert np.abs(per_fold - hot.sum(axis=0) / 5).max() < 1.0, per_fold
    assert np.bincount(assignment, minlength=5).tolist() == [60] * 5
    assert (fold_assignment(hot.astype(np.float32), 5, seed=0) == assignment).all()
    assert not (fold_assignment(hot.astype(np.float32), 5, seed=1) == assignment).all()


def test_too_few_images_of_a_class_is_one_line():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 2)
    with pytest.raises(UserError) as error:
        fold_assignment(labels, 3, seed=0, classes=["cat", "dog", "eel"])
    text = str(error.value)
    assert "class 'eel' has 2 images" in text and "dataset.folds=3" in text and "\n" not in text


def test_multilabel_fold_predictions_round_trip(tmp_path):
    hot = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
    probabilities = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.3], [0.2, 0.8, 0.4]])
    path = write_fold_predictions(
        tmp_path / "val.csv",
        [4, 0, 7],
        ["a.png", "b.png", "c.png"],
        hot,
        probabilities,
        list("xyz"),
    )
    rows = read_rows(path)
    assert [r["target_name"] for r in rows] == ["x;z", "", "y"]
    assert [r["prediction_name"] for r in rows] == ["x;z", "y", "y"]
    assert [r["correct"] for r in rows] == ["1", "0", "1"]
    back = read_fold_predictions(path, list("xyz"), multilabel=True)
    assert back.pool_index.tolist() == [4, 0, 7] and back.paths == ["a.png", "b.png", "c.png"]
    assert np.array_equal(back.targets, hot) and np.allclose(back.probabilities, probabilities)


# --- real datasets -------------------------------------------------------------------------


def test_digits_folds_keep_the_test_split():
    plain = build.build_dataset(compose(["dataset=digits"]))
    cut = build.build_dataset(compose(["dataset=digits", "dataset.folds=5", "dataset.fold=2"]))
    assert torch.equal(plain.test.images, cut.test.images)
    assert torch.equal(plain.test.labels, cut.test.labels)
    assert len(cut.train) + len(cut.val) == len(plain.train) + len(plain.val)
    assert cut.folds.record()["fold"] == 2 and len(cut.val) in (305, 306)  # 1527 / 5
    assert cut.mean != plain.mean  # statistics of the new training split


def test_table_folds_keep_groups_whole_and_name_files(tmp_path):
    count = 36
    names = write_images(tmp_path, count)
    rows = [[n, "ab"[i % 2], f"site{i // 3}"] for i, n in enumerate(names)]
    table = write_table(tmp_path, ["image", "label", "site"], rows)
    options = [
        "dataset=table",
        f"dataset.path={table}",
        "dataset.group_col=site",
        "dataset.image_size=8",
        "dataset.channels=1",
        "dataset.stats_images=4",
        "dataset.folds=3",
    ]
    site = {n: f"site{i // 3}" for i, n in enumerate(names)}
    seen: list[str] = []
    for fold in range(3):
        data = build.build_dataset(compose([*options, f"dataset.fold={fold}"]))
        assert data.folds.val_paths == data.val.paths  # val_predictions.csv names the files
        val_files = [Path(p).name for p in data.val.paths]
        train_files = [Path(p).name for p in data.train.paths]
        assert not {site[n] for n in val_files} & {site[n] for n in train_files}
        seen += val_files
    pool = count - len(data.test)
    assert len(seen) == len(set(seen)) == pool  # the pool, each file in one fold


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.folds=1"], "dataset.folds=1 is invalid"),
        (["dataset.folds=-2"], "dataset.folds=-2 is invalid"),
        (["dataset.folds=3", "dataset.fold=3"], "dataset.fold=3 is invalid: with folds=3 use 0..2"),
        (["dataset.folds=3", "dataset.fold=-1"], "dataset.fold=-1 is invalid"),
        (["dataset.fold=1"], "dataset.fold=1 is invalid: set dataset.folds=K"),
        (
            ["method=dann", "method.target_dataset.folds=3"],
            "method.target_dataset.folds=3: DANN uses the target domain whole",
        ),
    ],
)
def test_bad_fold_values_are_one_line_and_exit_2(capsys, tmp_path, overrides, message):
    out = tmp_path / "outputs"
    assert cli.main(["train", *TINY, *overrides, f"output_root={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not out.exists()


# --- one tiny k-fold sweep -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """2 folds x 2 seeds of the one-epoch tiny run (synthetic, 4 classes)."""
    root = tmp_path_factory.mktemp("kfold")
    args = ["train", "-m", "dataset.folds=2", "dataset.fold=0,1", "seed=0,1", *TINY]
    args += ["trainer.epochs=1", "report.html=false", f"output_root={root}"]
    assert cli.main(args) == 0
    (sweep_dir,) = list((root / "multirun").glob("*/*"))
    return sweep_dir


def _summaries(sweep: Path) -> list[dict]:
    return [json.loads(f.summary_json.read_text()) for f in SweepFolder(sweep).job_folders()]


def test_fold_runs_record_their_split(sweep):
    summaries = _summaries(sweep)
    data = [s["data"] for s in summaries]
    assert sorted((s["data"]["fold"], s["seed"]) for s in summaries) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert {(d["folds"], d["split_seed"], d["split_hash"]) for d in data} == {
        (2, 0, data[0]["split_hash"])
    }
    # The run's val_predictions.csv holds the fold the split function assigns
    labels = build.build_dataset(compose(TINY))
    pool = labels.train.join(labels.val).labels.numpy()
    assignment = fold_assignment(pool, 2, seed=0)
    assert split_hash(assignment, pool) == data[0]["split_hash"]
    for folder in SweepFolder(sweep).job_folders():
        fold = json.loads(folder.summary_json.read_text())["data"]["fold"]
        rows = read_rows(folder.val_predictions_csv)
        index = [int(r["pool_index"]) for r in rows]
        assert index == np.flatnonzero(assignment == fold).tolist()
        assert [int(r["target"]) for r in rows] == pool[index].tolist()


def test_oof_predictions_cover_the_pool_once_per_seed(sweep):
    pool = json.loads(RunFolder(next(sweep.glob("0_*"))).summary_json.read_text())["data"]
    rows = read_rows(SweepFolder(sweep).oof_predictions_csv)
    for seed in ("0", "1"):
        index = sorted(int(r["pool_index"]) for r in rows if r["seed"] == seed)
        assert index == list(range(pool["pool_images"]))
    assert len(rows) == 2 * pool["pool_images"]
    metrics = json.loads(SweepFolder(sweep).oof_metrics_json.read_text())
    (config,) = metrics["configurations"]
    assert config["complete"] and config["folds"] == 2 and config["configuration"] == "all"
    for record in config["seeds"]:
        mine = [r for r in rows if r["seed"] == str(record["seed"])]
        accuracy = np.mean([int(r["correct"]) for r in mine])
        assert record["accuracy"] == pytest.approx(accuracy, abs=1e-6)
        assert record["missing_folds"] == [] and record["images"] == pool["pool_images"]
    mean = np.mean([r["accuracy"] for r in config["seeds"]])
    assert config["mean"]["accuracy"]["mean"] == pytest.approx(mean, abs=1e-6)
    assert config["mean"]["accuracy"]["n"] == 2


def test_the_leaderboard_merges_folds_like_seeds(sweep):
    """The 2 folds x 2 seeds are one configuration: one row, n = 4, folds beside seeds."""
    (row,) = read_rows(sweep / "leaderboard.csv")
    assert row["n"] == "4"
    pairs = sorted(zip(row["folds"].split(), row["seeds"].split(), strict=True))
    assert pairs == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    assert float(row["test_accuracy_ci_low"]) <= float(row["test_accuracy_mean"])


def test_report_says_when_a_fold_is_missing(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (lost,) = [
        f.path
        for f in SweepFolder(copy).job_folders()
        if json.loads(f.summary_json.read_text())["data"]["fold"] == 1
        and json.loads(f.summary_json.read_text())["seed"] == 0
    ]
    shutil.rmtree(lost)
    (copy / "oof_metrics.json").unlink()
    assert cli.main(["report", str(copy)]) == 0
    metrics = json.loads((copy / "oof_metrics.json").read_text())
    (config,) = metrics["configurations"]
    seeds = {r["seed"]: r for r in config["seeds"]}
    assert not config["complete"]
    assert seeds[0]["missing_folds"] == [1] and not seeds[0]["complete"]
    assert "missing fold(s) 1 of 2" in seeds[0]["problems"]
    assert seeds[1]["complete"] and "problems" not in seeds[1]


def test_a_damaged_fold_prediction_file_is_one_line(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    damaged = SweepFolder(copy).job_folders()[0].val_predictions_csv
    damaged.write_bytes(b"\x00\xff not a csv\n1,2\n")
    (copy / "oof_metrics.json").unlink()
    capsys.readouterr()
    assert cli.main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "val_predictions.csv" in err, err
    assert not (copy / "oof_metrics.json").exists()


def test_eval_ensembles_the_fold_runs_on_the_test_split(sweep, tmp_path):
    runs = [
        str(f.path)
        for f in SweepFolder(sweep).job_folders()
        if json.loads(f.summary_json.read_text())["seed"] == 0
    ]
    out = tmp_path / "ensemble"
    assert cli.main(["eval", f"run=[{','.join(runs)}]", f"out={out}", "device=cpu"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["runs"] == runs and record["split"] == "test" and len(record["members"]) == 2
    test = build.build_dataset(compose(TINY)).test  # the split every fold run tested on
    probabilities = np.load(out / "probabilities.npy")
    assert len(probabilities) == len(test)
    accuracy = float((probabilities.argmax(axis=1) == test.labels.numpy()).mean())
    assert record["accuracy"] == pytest.approx(accuracy)
    with pytest.raises(UserError, match="split=val: the runs validated on different"):
        evaluate_runs(runs, split="val", device="cpu")
