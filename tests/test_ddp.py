"""Data-parallel training: two gloo processes on the CPU, launched by torchrun."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env, run_cli

# No dropout or augmentation: the 2-process run must follow the 1-process loss curve.
DDP_RUN = [*TINY, "model.dropout=0.0", "augment=none", "trainer.epochs=3", "trainer.batch_size=24"]


def train_losses(run_dir: Path) -> list[float]:
    return [float(r["train_loss"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_and_writes_one_run(tmp_path):
    single = run_cli(["train", *DDP_RUN, "output_root=single"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    env = cli_env()
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "imgcls",
            "train",
            *DDP_RUN,
            "trainer.strategy=ddp",
            "output_root=ddp",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    (one,) = run_dirs(tmp_path / "single")
    runs = run_dirs(tmp_path / "ddp")
    assert len(runs) == 1, runs  # every rank agreed on one run directory
    folders = [
        p
        for p in (tmp_path / "ddp").rglob("*")
        if p.is_dir() and p.parent.parent == tmp_path / "ddp"
    ]
    assert folders == [runs[0]], folders  # and no rank left a folder of its own
    expected, got = train_losses(one), train_losses(runs[0])
    assert len(got) == len(expected) == 3
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "completed"
    state = torch.load(runs[0] / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # loadable without DDP


def test_ddp_without_torchrun_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from imgcls import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main(["train", *TINY, "trainer.strategy=ddp"]) == 2
    assert "torchrun --nproc_per_node=N" in capsys.readouterr().err


def test_unknown_strategy_is_rejected(tmp_path, monkeypatch, capsys):
    from imgcls import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *TINY, "trainer.strategy=dp"]) == 2
    assert "unknown trainer.strategy 'dp'" in capsys.readouterr().err
