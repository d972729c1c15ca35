"""data.sampler=balanced: even class draws on both data paths, repeat factors for multi-hot
labels, one order per seed (and per DDP rank), and the balanced test figures of a run."""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ONE_EPOCH

import imgcls.app.job as job
from imgcls import cli
from imgcls.app import build
from imgcls.app.job import train
from imgcls.base.checkpoint import rng_state
from imgcls.config.compose import compose
from imgcls.data.loader import DeviceLoader
from imgcls.data.pipeline import make_loaders
from imgcls.data.sample_loader import SampleLoader
from imgcls.data.sampling import class_balanced_weights, repeat_factors, sample_weights
from imgcls.data.splits import DataSplits, ImageSet
from imgcls.data.targets import MULTILABEL
from imgcls.train.engine import Predictions
from imgcls.train.replay import epoch_batches, generator_state

COUNTS = (2000, 200, 50)  # a 40:4:1 skew, the 200/20/5 of a small set scaled for tighter counts
N = sum(COUNTS)


def skewed_set(counts: tuple[int, ...] = COUNTS) -> ImageSet:
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    return ImageSet(torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8), labels)


def epoch_labels(loader) -> torch.Tensor:
    return torch.cat([labels for _, labels in loader])


def loader(kind: str, data: ImageSet, weights: torch.Tensor | None, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    common = {"shuffle": True, "generator": generator, "weights": weights}
    if kind == "device":
        return DeviceLoader(data, 500, (0.5,), (0.5,), **common)
    return SampleLoader(data, 500, (0.5,), (0.5,), **common)


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_balanced_sampler_draws_each_class_about_a_third(kind):
    """Over one epoch (N draws) each class count is Binomial(N, 1/3): mean 750, std 22.4.
    Five standard deviations (112) make a false failure a one-in-a-million event, while the
    skewed order's 2000/200/50 lies 30 standard deviations away."""
    data = skewed_set()
    labels = epoch_labels(loader(kind, data, class_balanced_weights(data.labels, 3)))
    assert len(labels) == N
    counts = torch.bincount(labels, minlength=3).tolist()
    std = math.sqrt(N * (1 / 3) * (2 / 3))
    for count in counts:
        assert abs(count - N / 3) < 5 * std, counts


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_without_the_sampler_the_skew_stays(kind):
    labels = epoch_labels(loader(kind, skewed_set(), None))
    assert torch.bincount(labels, minlength=3).tolist() == list(COUNTS)


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_the_same_seed_draws_the_same_order(kind):
    data = skewed_set()
    weights = class_balanced_weights(data.labels, 3)
    first = epoch_labels(loader(kind, data, weights, seed=3))
    again = epoch_labels(loader(kind, data, weights, seed=3))
    other = epoch_labels(loader(kind, data, weights, seed=4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_resumed_epoch_replays_the_drawn_order():
    """Resuming mid-epoch sets the generator back to the epoch's start and replays its draws
    (imgcls.train.replay): the batches after the interruption are those of a straight run."""
    data = skewed_set()
    weights = class_balanced_weights(data.labels, 3)
    straight = loader("device", data, weights, seed=5)
    start = generator_state(straight)
    batches = iter(straight)
    done = [next(batches)[1] for _ in range(2)]
    saved = rng_state(straight.generator)  # what an interruption after two batches keeps
    rest = [labels for _, labels in batches]
    resumed = loader("device", data, weights, seed=99)
    partial = {"epoch": 1, "batches": len(done), "loader_start": start}
    again = epoch_batches(resumed, len(straight), partial, {"rng": saved, "partial": partial})
    replayed = [labels for _, (_, labels) in again]
    assert len(replayed) == len(rest) and all(map(torch.equal, replayed, rest))


def test_ddp_ranks_share_one_drawn_order():
    """Every rank draws the same order from the same seed and keeps its share: the two ranks'
    batches interleave into exactly the one-process batches."""
    data = ImageSet(torch.arange(N).view(N, 1, 1, 1).to(torch.uint8), skewed_set().labels)
    weights = class_balanced_weights(data.labels, 3)

    def batches(shard: tuple[int, int]) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(7)
        run = DeviceLoader(
            data,
            64,
            (0.0,),
            (1.0,),
            shuffle=True,
            generator=generator,
            shard=shard,
            weights=weights,
        )
        return [labels for _, labels in run]

    whole, rank0, rank1 = batches((0, 1)), batches((0, 2)), batches((1, 2))
    assert len(whole) == len(rank0) == len(rank1)
    for one, a, b in zip(whole, rank0, rank1, strict=True):
        assert torch.equal(one[0::2], a) and torch.equal(one[1::2], b)


def test_class_balanced_weights_are_inverse_counts():
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    expected = torch.tensor([1 / 4] * 4 + [1.0] + [1 / 2] * 2, dtype=torch.float64)
    assert torch.allclose(class_balanced_weights(labels, 4), expected)


def test_repeat_factors_follow_the_lvis_formula():
    """r_c = max(1, sqrt(t / f_c)), r_i = max over the image's labels (1 without labels)."""
    rows = [[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 0, 0]] * 4  # f = 0.8, 0.2, 0.2
    labels = torch.tensor(rows, dtype=torch.float32)
    t = 0.5
    r = [max(1.0, math.sqrt(t / f)) for f in (0.8, 0.2, 0.2)]  # 1, 1.58, 1.58
    expected = [r[0], max(r[0], r[1]), max(r[0], r[2]), r[0], 1.0] * 4
    assert repeat_factors(labels, t).tolist() == pytest.approx(expected)
    assert sample_weights(labels, 3, t).tolist() == pytest.approx(expected)
    assert repeat_factors(labels, 0.1).tolist() == [1.0] * 20  # no label rarer than 10%


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_repeat_factor_sampling_oversamples_the_rare_label(kind):
    """A label on 2% of the images appears on about sqrt(0.1 / 0.02) = 2.24 times as many
    drawn images (mean 2.24 * 40 / (1960 + 2.24 * 40) of 2000 draws, 87.4 +- 9.1)."""
    labels = torch.zeros(2000, 2)
    labels[:, 0] = 1
    labels[:40, 1] = 1
    data = ImageSet(torch.zeros(2000, 1, 1, 1, dtype=torch.uint8), labels)
    drawn = epoch_labels(loader(kind, data, sample_weights(labels, 2, 0.1)))
    rare = int(drawn[:, 1].sum())
    r = math.sqrt(0.1 / 0.02)
    p = r * 40 / (1960 + r * 40)
    assert abs(rare - 2000 * p) < 5 * math.sqrt(2000 * p * (1 - p)), rare


@pytest.mark.parametrize("mode", ["memory", "dataloader"])
def test_make_loaders_samples_only_the_train_split(mode, caplog):
    data = skewed_set((200, 20, 5))
    splits = DataSplits("skewed", data, data, data, ["a", "b", "c"], (0.5,), (0.5,))
    options = {"loader": mode, "sampler": "balanced", "repeat_threshold": 0.1}
    with caplog.at_level(logging.INFO, logger="imgcls"):
        loaders = make_loaders(
            splits,
            options,
            batch_size=25,
            eval_batch_size=25,
            device=torch.device("cpu"),
            augment=None,
            generator=torch.Generator().manual_seed(0),
        )
    assert "data: class-balanced sampling over 3 classes (images per class 5 to 200" in caplog.text
    assert loaders.train.weights is not None
    assert loaders.val.weights is None and loaders.test.weights is None
    assert torch.bincount(epoch_labels(loaders.test)).tolist() == [200, 20, 5]


# --- a run end to end, and its balanced test figures ------------------------------------------


@pytest.fixture(scope="module")
def balanced_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("balanced") / "outputs"
    overrides = [*ONE_EPOCH, "data.sampler=balanced", "dataset.test_fraction=0.3"]
    assert cli.main(["train", *overrides, f"output_root={root}"]) == 0
    (summary,) = root.rglob("summary.json")
    return summary.parent


def confusion_pairs(matrix: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(targets, predictions) with the counts of a confusion matrix."""
    pairs = [(i, j) for i, row in enumerate(matrix) for j, n in enumerate(row) for _ in range(n)]
    return np.array([i for i, _ in pairs]), np.array([j for _, j in pairs])


def test_a_balanced_run_records_sklearn_balanced_figures(balanced_run):
    from sklearn.metrics import balanced_accuracy_score, recall_score

    summary = json.loads((balanced_run / "summary.json").read_text())
    record = json.loads((balanced_run / "test_metrics.json").read_text())
    assert summary["status"] == "completed"
    assert summary["hyperparameters"]["sampler"] == "balanced"
    targets, predictions = confusion_pairs(record["confusion_matrix"])
    expected = balanced_accuracy_score(targets, predictions)
    assert summary["test"]["balanced_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert record["balanced_accuracy"] == pytest.approx(expected, abs=1e-12)
    recall = recall_score(targets, predictions, labels=range(4), average=None, zero_division=0)
    assert summary["test"]["per_class_recall"] == pytest.approx(
        dict(zip(record["classes"], recall, strict=True))
    )
    log = (balanced_run / "train.log").read_text()
    assert f"(balanced {summary['test']['balanced_accuracy']:.4f})" in log
    html = (balanced_run / "report.html").read_text()
    assert "test balanced accuracy" in html and "balanced_accuracy" in html


def test_multilabel_runs_get_no_balanced_figures():
    """Balanced accuracy is a single-label figure: multi-hot test labels add nothing."""
    multi = Predictions(torch.rand(4, 3), torch.tensor([[1.0, 0, 1]] * 4))
    assert job._balanced_test_figures(multi, ["a", "b", "c"]) == {}
    single = Predictions(torch.eye(3)[[0, 1, 1, 2]], torch.tensor([0, 1, 2, 2]))
    assert job._balanced_test_figures(single, ["a", "b", "c"]) == {
        "balanced_accuracy": pytest.approx((1 + 1 + 0.5) / 3),
        "per_class_recall": {"a": 1.0, "b": 1.0, "c": 0.5},
    }


def test_a_multilabel_run_trains_with_repeat_factor_sampling(tmp_path, monkeypatch, caplog):
    """The synthetic set relabelled multi-hot (each image also carries the next class when
    its index is even): a balanced run draws by repeat factors and ends with a multi-label
    summary, without single-label balanced figures."""
    original = build.build_dataset

    def multilabel_dataset(cfg) -> DataSplits:
        data = original(cfg)

        def multi_hot(split: ImageSet) -> ImageSet:
            rows = torch.nn.functional.one_hot(split.labels.long(), data.num_classes).float()
            even = torch.arange(len(rows)) % 2 == 0
            rows[even, (split.labels[even] + 1) % data.num_classes] = 1.0
            return ImageSet(split.images, rows)

        return replace(
            data,
            train=multi_hot(data.train),
            val=multi_hot(data.val),
            test=multi_hot(data.test),
            task=MULTILABEL,
        )

    monkeypatch.setattr(build, "build_dataset", multilabel_dataset)
    overrides = [*ONE_EPOCH, "data.sampler=balanced", "data.repeat_threshold=0.9"]
    with caplog.at_level(logging.INFO, logger="imgcls"):
        result = train(compose([*overrides, f"output_root={tmp_path}"]))
    assert "data: repeat-factor sampling over 4 labels (threshold 0.9;" in caplog.text
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["data"]["task"] == MULTILABEL
    assert "map" in summary["test"] and "balanced_accuracy" not in summary["test"]


def test_eval_prints_balanced_accuracy_equal_to_sklearn(balanced_run, tmp_path, capsys):
    from sklearn.metrics import balanced_accuracy_score

    out = tmp_path / "eval"
    assert cli.main(["eval", f"run={balanced_run}", f"out={out}", "device=cpu"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    targets = [int(r["target"]) for r in rows]
    predictions = [int(r["prediction"]) for r in rows]
    assert metrics["balanced_accuracy"] == balanced_accuracy_score(targets, predictions)
    assert "balanced_accuracy" in printed
    assert f"{metrics['balanced_accuracy']:.4f}" in printed


def test_an_unknown_sampler_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "outputs"
    assert cli.main(["train", *ONE_EPOCH, "data.sampler=bogus", f"output_root={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "imgcls: error: unknown data.sampler 'bogus'; available: balanced, none"
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "rule"), [("0", "it must be positive"), ("1.5", "it is a probability in [0, 1]")]
)
def test_a_bad_repeat_threshold_is_one_line_and_exit_2(value, rule, tmp_path, capsys):
    out = tmp_path / "outputs"
    overrides = [*ONE_EPOCH, f"data.repeat_threshold={value}", f"output_root={out}"]
    assert cli.main(["train", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"imgcls: error: data.repeat_threshold={value} is invalid: {rule}"
    assert not out.exists()
