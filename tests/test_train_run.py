"""A training run end to end through ``train(cfg)``: the run directory and its contents."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import pytest
import torch
import yaml

from imgcls.app.job import train
from imgcls.base.checkpoint import CHECKPOINT_KEYS, load_checkpoint
from imgcls.base.errors import NonFiniteLossError
from imgcls.config.compose import compose
from imgcls.config.options.base import Options
from imgcls.registry import MODELS

METRIC_COLUMNS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",
    "images_per_second",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import TINY

    run_dir = tmp_path_factory.mktemp("run")
    result = train(compose(TINY + ["seed=3"]), run_dir, overrides=TINY)
    return run_dir, result


def test_run_directory_has_every_file(finished_run):
    run_dir, _ = finished_run
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.tmp")), "temporary files left behind"


def test_metrics_csv_has_one_row_per_epoch(finished_run):
    run_dir, _ = finished_run
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(c in rows[0] for c in METRIC_COLUMNS)
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and 0 <= float(row["val_accuracy"]) <= 1
        assert float(row["images_per_second"]) > 0 and math.isfinite(float(row["train_loss"]))
    # 168 training images in batches of 32 -> 6 steps per epoch. simplecnn's recipe: AdamW at
    # lr 0.003 with a one-epoch warmup from 0.1x, then cosine: epoch 2 starts at the peak.
    assert [int(r["step"]) for r in rows] == [6, 12]
    assert float(rows[0]["lr"]) == pytest.approx(0.003 * 0.1)
    assert float(rows[1]["lr"]) == pytest.approx(0.003, rel=1e-4)


def test_summary_records_results_and_facts(finished_run):
    run_dir, result = finished_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary, default=str))
    assert summary["status"] == "completed"
    assert summary["best"]["epoch"] in (1, 2)
    assert summary["best"]["val_accuracy"] == summary["best"]["value"]
    assert 0 <= summary["test"]["accuracy"] <= 1 and summary["test"]["loss"] > 0
    assert summary["params"] > 0 and summary["flops"] > 0 and summary["wall_seconds"] > 0
    asked = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["trainer"]
    assert summary["device"] == asked["device"] == "cpu"  # what TINY asks for, GPU or not
    assert str(summary["precision"]) == str(asked["precision"]) == "32"
    assert summary["seed"] == 3
    assert {"torch", "torchvision", "hydra-core", "python"} <= set(summary["versions"])
    assert "git_commit" in summary
    assert summary["classes"] == ["horizontal_lines", "vertical_lines", "diagonal", "circular"]


def test_best_epoch_matches_metrics(finished_run):
    run_dir, _ = finished_run
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    summary = json.loads((run_dir / "summary.json").read_text())
    best_row = max(rows, key=lambda r: (float(r["val_accuracy"]), -int(r["epoch"])))
    assert summary["best"]["epoch"] == int(best_row["epoch"])


def test_checkpoints_load_safely_with_all_keys(finished_run):
    run_dir, _ = finished_run
    for name in ("last", "best"):
        state = torch.load(run_dir / "checkpoints" / f"{name}.pt", weights_only=True)
        assert set(CHECKPOINT_KEYS) <= set(state)
        assert state["classes"][0] == "horizontal_lines"
        assert state["config"]["model"]["name"] == "simplecnn"
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["step"] == 12
    assert {"python", "numpy", "torch", "loader"} <= set(last["rng"])


def test_config_and_log_are_written(finished_run):
    run_dir, _ = finished_run
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["model"]["name"] == "simplecnn" and config["seed"] == 3
    assert (
        yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())[0] == "model=simplecnn"
    )
    log = (run_dir / "train.log").read_text()
    assert "epoch 2/2" in log and "test accuracy" in log


def test_same_seed_gives_same_metrics(tmp_path, tiny):
    first = train(compose(tiny), tmp_path / "a")
    second = train(compose(tiny), tmp_path / "b")

    def values(path):
        rows = list(csv.DictReader((path / "metrics.csv").open()))
        return [
            {k: v for k, v in r.items() if k not in ("epoch_seconds", "images_per_second")}
            for r in rows
        ]

    assert values(first.run_dir) == values(second.run_dir)


def test_default_run_dir_is_created_under_output_root(tmp_path, tiny):
    result = train(compose(tiny + [f"output_root={tmp_path}"]))
    assert result.run_dir.parent.parent == tmp_path
    assert result.run_dir.name.endswith("_simplecnn_synthetic")


class _NanAfterFirstEpoch(torch.nn.Module):
    """Finite outputs for the first epoch's steps, NaN afterwards."""

    def __init__(self, options, num_classes: int, in_channels: int, image_size: tuple[int, int]):
        super().__init__()
        finite_steps = options.finite_steps
        self.linear = torch.nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)
        self.finite_steps = finite_steps
        self.calls = 0

    def forward(self, x):
        out = self.linear(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls > self.finite_steps:
                out = out * float("nan")
        return out


@dataclass
class _NanOptions(Options):
    finite_steps: int = 6


if "test_nan_after_first_epoch" not in MODELS:
    MODELS.register("test_nan_after_first_epoch", _NanOptions)(_NanAfterFirstEpoch)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny):
    from omegaconf import open_dict

    cfg = compose(tiny + ["trainer.epochs=3"])
    with open_dict(cfg):
        cfg.model = {"name": "test_nan_after_first_epoch"}
    with pytest.raises(
        NonFiniteLossError, match=r"loss became nan in epoch 2.*last good checkpoint"
    ):
        train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "nan" in summary["error"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1
    assert len(list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))) == 1
