"""The end of a multi-label run: thresholds tuned on validation, stored, and the test at them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import ONE_EPOCH

from imgcls.app import build
from imgcls.app.inference import load_run
from imgcls.app.job import train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.config.compose import compose
from imgcls.data.splits import DataSplits, ImageSet
from imgcls.data.targets import MULTILABEL
from imgcls.evaluate.multilabel import multilabel_metrics, tune_thresholds


def multi_hot(images: ImageSet, num_classes: int) -> ImageSet:
    """Each image keeps its class and, for every other image, also carries the next class:
    a second label the pixels cannot tell, so the tuned thresholds are not all 0.5."""
    classes = images.labels.long()
    rows = torch.nn.functional.one_hot(classes, num_classes).float()
    second = torch.arange(len(classes)) % 2 == 0
    rows[second, (classes[second] + 1) % num_classes] = 1.0
    return ImageSet(images.images, rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of TINY with multi-hot labels (the synthetic dataset, relabelled)."""
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

    root = tmp_path_factory.mktemp("multilabel_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "build_dataset", multilabel_dataset)
        cfg = compose([*ONE_EPOCH, f"output_root={root}"])
        result = train(cfg)
        data = multilabel_dataset(cfg)
    return result, data


def probabilities(run_dir, split: ImageSet) -> np.ndarray:
    """Sigmoid outputs of the run's best weights on ``split``, computed apart from the run."""
    loaded = load_run(run_dir, device="cpu")
    spec = loaded.spec
    mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
    with torch.inference_mode():
        loaded.model.eval()
        logits = loaded.model((split.images.float() / 255.0 - mean) / std)
    return logits.float().sigmoid().numpy()


def test_thresholds_are_tuned_on_the_validation_predictions(run):
    result, data = run
    summary = result.summary
    expected = tune_thresholds(data.val.labels.numpy(), probabilities(result.run_dir, data.val))
    assert list(summary["thresholds"]) == data.classes
    assert list(summary["thresholds"].values()) == pytest.approx(expected.tolist(), abs=1e-6)
    assert any(abs(t - 0.5) > 1e-3 for t in summary["thresholds"].values())
    best = load_checkpoint(result.folder.best_checkpoint)
    assert best["data"]["thresholds"] == list(summary["thresholds"].values())
    assert best["data"]["task"] == MULTILABEL
    assert "thresholds" not in load_checkpoint(result.folder.last_checkpoint)["data"]


def test_summary_test_metrics_are_those_at_the_tuned_thresholds(run):
    result, data = run
    summary = result.summary
    thresholds = list(summary["thresholds"].values())
    p = probabilities(result.run_dir, data.test)
    expected = multilabel_metrics(data.test.labels.numpy(), p, data.classes, thresholds)
    test = summary["test"]
    for key in ("map", "f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"):
        assert test[key] == pytest.approx(expected[key], abs=1e-6), key
    assert test["accuracy"] == test["subset_accuracy"]
    assert isinstance(test["loss"], float)
    written = json.loads(result.folder.test_metrics_json.read_text())
    assert written["task"] == MULTILABEL and written["thresholds"] == thresholds
    assert [r["class"] for r in written["per_label"]] == data.classes
    for row, want in zip(written["per_label"], expected["per_label"], strict=True):
        assert row["threshold"] == want["threshold"]
        assert row["support"] == want["support"]
        assert row["f1"] == pytest.approx(want["f1"], abs=1e-6)
        assert row["ap"] == pytest.approx(want["ap"], abs=1e-6)
    assert written["map"] == pytest.approx(test["map"])


def test_the_log_names_the_multilabel_test_figures(run):
    result, _ = run
    log = result.folder.train_log.read_text()
    line = next(x for x in log.splitlines() if "test mAP" in x)
    assert "micro F1" in line and "macro F1" in line
