"""A multi-label label table as a new user would train it: a ``-m`` sweep over losses and
samplers, and a run stopped by SIGINT that ``resume=`` continues to the same thresholds
and test figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import CPU
from test_multilabel_inference import write_table
from test_resume import _SignalOnce  # noqa: F401  (registers the test_signal_once model)

from imgcls import cli
from imgcls.app.job import train
from imgcls.app.resume import train_or_resume
from imgcls.base.errors import TrainingInterrupted
from imgcls.config.compose import compose

TABLE_RUN = [
    "dataset=table",
    "dataset.label_col=tags",
    "dataset.split_col=split",
    "dataset.label_delim=|",
    "dataset.image_size=8",
    "dataset.channels=1",
    "model=simplecnn",
    "model.widths=[8,16]",
    "model.hidden=32",
    "trainer.batch_size=16",
    "trainer.epochs=2",
    *CPU,
]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("multilabel_table"))


def test_a_sweep_over_losses_and_samplers_ends_in_a_val_map_leaderboard(table, tmp_path):
    sweep = tmp_path / "sweep"
    code = cli.main(
        [
            "train",
            "-m",
            *TABLE_RUN,
            f"dataset.path={table}",
            "loss=bce,asymmetric",
            "data.sampler=none,balanced",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert code == 0
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 4
    for summary in summaries:
        assert summary["status"] == "completed"
        assert summary["best"]["metric"] == "val_map"
        assert summary["data"]["task"] == "multilabel"
        assert set(summary["thresholds"]) == {"cat", "dog", "sky", "tree"}
    with open(sweep / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    values = [float(row["val_map_mean"]) for row in rows]
    assert values == sorted(values, reverse=True)  # sorted by the monitored metric
    assert all(0 <= float(row["test_map_mean"]) <= 1 for row in rows)
    assert {row["loss"] for row in rows} == {"bce", "asymmetric"}


def test_a_stopped_multilabel_run_resumes_to_its_thresholds(table, tmp_path):
    from omegaconf import open_dict

    def config(root: Path):
        cfg = compose([*TABLE_RUN, f"dataset.path={table}", f"output_root={root}"])
        with open_dict(cfg):
            cfg.model = {"name": "test_signal_once", "at_call": 4}
        return cfg

    straight = train(config(tmp_path / "a"))
    _SignalOnce.armed = True
    with pytest.raises(TrainingInterrupted):
        train(config(tmp_path / "b"))
    (run_dir,) = [p.parent for p in (tmp_path / "b").rglob("summary.json")]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    train_or_resume(compose([f"resume={run_dir}"]))
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["status"] == "completed"
    assert resumed["thresholds"] == straight.summary["thresholds"]
    assert resumed["test"] == straight.summary["test"]
