"""The loss group: each loss against its formula, class weights against theirs, and the
choices a run refuses (a monitor the task has no metric for, a method with its own loss)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY

from imgcls import cli
from imgcls.registry import LOSSES
from imgcls.train import losses

torch.manual_seed(0)
LOGITS = torch.randn(6, 4)
INDICES = torch.tensor([0, 1, 2, 3, 1, 1])
MULTIHOT = torch.tensor(
    [[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]],
    dtype=torch.float32,
)


def build(name: str, task: str, smoothing: float = 0.0, **options):
    return LOSSES.build(
        name,
        {"name": name, **options},
        prefix="loss",
        task=task,
        counts=[10, 5, 2, 1],
        classes=list("abcd"),
        label_smoothing=smoothing,
    )


def test_cross_entropy_is_torchs_with_and_without_smoothing():
    for smoothing in (0.0, 0.1):
        loss = build("cross_entropy", "multiclass", smoothing)
        expected = F.cross_entropy(LOGITS, INDICES, label_smoothing=smoothing)
        assert torch.allclose(loss(LOGITS, INDICES), expected, atol=1e-6)
        soft = F.one_hot(INDICES, 4).float()  # the same targets as probabilities (MixUp path)
        assert torch.allclose(loss(LOGITS, soft), expected, atol=1e-6)


def test_multilabel_losses_sum_labels_and_average_images():
    expected = F.binary_cross_entropy_with_logits(LOGITS, MULTIHOT, reduction="sum") / 6
    for name in ("cross_entropy", "bce"):
        assert torch.allclose(build(name, "multilabel")(LOGITS, MULTIHOT), expected, atol=1e-6)
    smoothed = MULTIHOT * 0.8 + 0.1
    expected = F.binary_cross_entropy_with_logits(LOGITS, smoothed, reduction="sum") / 6
    assert torch.allclose(build("bce", "multilabel", 0.2)(LOGITS, MULTIHOT), expected, atol=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy_and_damps_easy_examples():
    assert torch.allclose(
        build("focal", "multiclass", gamma=0.0)(LOGITS, INDICES),
        F.cross_entropy(LOGITS, INDICES),
        atol=1e-6,
    )
    bce = F.binary_cross_entropy_with_logits(LOGITS, MULTIHOT, reduction="sum") / 6
    assert torch.allclose(build("focal", "multilabel", gamma=0.0)(LOGITS, MULTIHOT), bce, atol=1e-6)
    p = F.softmax(LOGITS, 1)[torch.arange(6), INDICES]
    expected = (-((1 - p) ** 2) * p.log()).mean()
    assert torch.allclose(
        build("focal", "multiclass", gamma=2.0)(LOGITS, INDICES), expected, atol=1e-6
    )


def test_asymmetric_matches_its_formula():
    loss = build("asymmetric", "multilabel", gamma_pos=1.0, gamma_neg=4.0, clip=0.05)
    p = LOGITS.sigmoid()
    p_neg = (1 - p + 0.05).clamp(max=1)
    y = MULTIHOT
    terms = y * (1 - p) ** 1.0 * p.log() + (1 - y) * (1 - p_neg) ** 4.0 * p_neg.log()
    assert torch.allclose(loss(LOGITS, y), -terms.sum(1).mean(), atol=1e-6)
    plain = build("asymmetric", "multilabel", gamma_pos=0.0, gamma_neg=0.0, clip=0.0)
    bce = F.binary_cross_entropy_with_logits(LOGITS, MULTIHOT, reduction="sum") / 6
    assert torch.allclose(plain(LOGITS, MULTIHOT), bce, atol=1e-5)


def test_auto_class_weights_equal_the_formulas():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    counts = np.bincount(labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert np.allclose(losses.auto_class_weights(counts, "inverse_frequency"), expected)
    beta = 0.99
    raw = (1 - beta) / (1 - beta ** counts.astype(float))
    expected = raw / raw.sum() * 3  # Cui et al.: normalised to sum to the number of classes
    assert np.allclose(losses.auto_class_weights(counts, "effective_number", beta), expected)


def test_class_weights_weigh_each_class_term():
    weights = [1.0, 2.0, 3.0, 4.0]
    loss = build("cross_entropy", "multiclass", class_weights=weights)
    terms = -F.log_softmax(LOGITS, 1)[torch.arange(6), INDICES] * torch.tensor(weights)[INDICES]
    assert torch.allclose(loss(LOGITS, INDICES), terms.mean(), atol=1e-6)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(args: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["train", *TINY, *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=focl"], r"unknown loss 'focl'.*did you mean 'focal'"),
        (
            ["loss.class_weights=[1,2]"],
            r"loss.class_weights has 2 weights but the dataset has 4 classes",
        ),
        (["loss.class_weights=heavy"], r"class_weights=heavy is invalid: use null, auto"),
        (["loss=focal", "loss.gamma=-1"], r"loss.gamma=-1 is invalid"),
        (["trainer.monitor=val_map"], r"trainer.monitor=val_map needs several labels per image"),
        (["trainer.monitor=val_top1"], r"trainer.monitor"),
    ],
)
def test_bad_loss_choices_are_one_line(workspace, capsys, args, message):
    import re

    code, err = run(args, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (workspace / "outputs").exists() or not any(
        (workspace / "outputs").rglob("summary.json")
    )


def test_a_weighted_focal_run_monitors_balanced_accuracy(workspace, capsys):
    code, err = run(
        ["loss=focal", "loss.class_weights=auto", "trainer.monitor=val_balanced_accuracy"], capsys
    )
    assert code == 0, err
    (summary_path,) = Path("outputs").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["best"]["metric"] == "val_balanced_accuracy"
    assert 0 <= summary["best"]["val_balanced_accuracy"] <= 1
    assert summary["status"] == "completed"
    assert "balanced_accuracy" in summary["test"]
