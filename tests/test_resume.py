"""Exact resume: SIGINT to the real program, resume, and the same result as without a stop."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env
from torch import nn

import imgcls.cli
from imgcls.app.job import train
from imgcls.app.resume import train_or_resume
from imgcls.base.checkpoint import load_checkpoint
from imgcls.config.compose import compose
from imgcls.config.options.base import Options
from imgcls.registry import MODELS

TIMING = ("epoch_seconds", "images_per_second")

# Random draws everywhere: shuffling, per-image augmentation, dropout masks; plus the EMA,
# an L1 term and label smoothing, so that every saved state matters for the continued run.
EXACT = [
    *TINY,
    "trainer.epochs=3",
    "trainer.batch_size=8",
    "trainer.log_every=1",
    "trainer.deterministic=true",
    "augment=basic",
    "trainer.ema.decay=0.9",
    "regularizer=[l1,label_smoothing]",
]


def metric_values(run_dir: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.rglob("*") if p.is_dir() and (p / "summary.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigint_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """The signal goes to the real program; the uninterrupted reference and the resume run in
    this process (one torch thread, as the program has: the same sums in the same order)."""
    monkeypatch.chdir(tmp_path)
    assert imgcls.cli.main(["train", *EXACT, f"output_root={tmp_path / 'full'}"]) == 0
    reference = only_run_dir(tmp_path / "full")

    process = subprocess.Popen(
        [sys.executable, "-m", "imgcls", "train", *EXACT, f"output_root={tmp_path / 'cut'}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    seen = []
    for line in process.stdout:  # the program logs every step (stdout is not a terminal)
        seen.append(line)
        if line.startswith("epoch 2 step 2/"):
            process.send_signal(signal.SIGINT)
            break
    rest, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "SIGINT received: stopped in epoch 2" in stderr
    cut = only_run_dir(tmp_path / "cut")
    assert json.loads((cut / "summary.json").read_text())["status"] == "interrupted"
    state = load_checkpoint(cut / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["epoch_progress"]["epoch"] == 2
    assert 2 <= state["epoch_progress"]["batches"] < 21  # part-way through epoch 2
    assert len(metric_values(cut)) == 1

    capsys.readouterr()
    assert imgcls.cli.main(["train", f"resume={cut}"]) == 0, capsys.readouterr().err
    assert only_run_dir(tmp_path / "cut") == cut  # the same folder, and no stray new one
    assert [p for p in (tmp_path / "cut").rglob("*") if p.is_dir() and not any(p.iterdir())] == []
    assert metric_values(cut) == metric_values(reference)
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"]["epoch"] == 1
    expected = json.loads((reference / "summary.json").read_text())
    assert summary["test"] == expected["test"] and summary["best"] == expected["best"]
    final, wanted = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (cut, reference))
    for key in ("model", "optimizer", "scheduler", "ema"):
        assert _equal(final[key], wanted[key]), key


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@dataclass
class _SignalOnceOptions(Options):
    at_call: int = 8


class _SignalOnce(nn.Module):
    """A small dropout MLP that sends SIGINT to its own process at the given training call."""

    armed = False

    def __init__(self, options, num_classes, in_channels, image_size) -> None:
        super().__init__()
        at_call = options.at_call
        features = in_channels * image_size[0] * image_size[1]
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, 16),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(16, num_classes),
        )
        self.at_call = at_call
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if _SignalOnce.armed and self.calls == self.at_call:
                _SignalOnce.armed = False
                signal.raise_signal(signal.SIGINT)
        return self.net(x)


if "test_signal_once" not in MODELS:
    MODELS.register("test_signal_once", _SignalOnceOptions)(_SignalOnce)

SMALL = [*TINY, "trainer.batch_size=16", "trainer.epochs=2", "augment=basic"]


def small(extra: list[str] = (), at_call: int = 8):
    """SMALL with the test model (which has no config file, so it is set in the tree)."""
    from omegaconf import open_dict

    cfg = compose([*SMALL, *extra])
    with open_dict(cfg):
        cfg.model = {"name": "test_signal_once", "at_call": at_call}
    return cfg


def interrupted_run(root: Path, extra: list[str] = (), at_call: int = 8) -> Path:
    """A run stopped by SIGINT in the middle of an epoch (in this process)."""
    from imgcls.base.errors import TrainingInterrupted

    _SignalOnce.armed = True
    with pytest.raises(TrainingInterrupted) as stopped:
        train(small([*extra, f"output_root={root}"], at_call))
    assert stopped.value.exit_code == 130
    return only_run_dir(root)


def test_in_process_interrupt_and_resume_match_a_straight_run(tmp_path):
    straight = train(small([f"output_root={tmp_path / 'a'}"]))
    run_dir = interrupted_run(tmp_path / "b")
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch_progress"]["batches"] == 8
    # a kill -9 during a later write leaves a temporary file; it must not matter
    (run_dir / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    result = imgcls.cli.main(["train", f"resume={run_dir}"])
    assert result == 0
    assert metric_values(run_dir) == metric_values(straight.run_dir)
    assert _equal(
        load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"],
        load_checkpoint(straight.run_dir / "checkpoints" / "last.pt")["model"],
    )


def test_rows_written_after_the_checkpoint_are_not_duplicated(tmp_path):
    straight = train(small(["trainer.epochs=3", f"output_root={tmp_path / 'a'}"]))
    run_dir = interrupted_run(tmp_path / "b", ["trainer.epochs=3"], at_call=15)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1  # interrupted in epoch 2, after epoch 1's row
    metrics = run_dir / "metrics.csv"
    lines = metrics.read_text().splitlines()
    # as if killed after writing epoch 2's row but before its checkpoint
    metrics.write_text("\n".join([*lines, lines[-1].replace("1,", "2,", 1)]) + "\n")
    train_or_resume(compose(["resume=" + str(run_dir)]))
    assert metric_values(run_dir) == metric_values(straight.run_dir)


def test_resume_auto_continues_the_unfinished_run_with_the_same_config(tmp_path):
    run_dir = interrupted_run(tmp_path)
    other = train_or_resume(small(["seed=5", f"output_root={tmp_path}", "resume=auto"]))
    assert other.run_dir != run_dir  # another config: a new run
    result = train_or_resume(small([f"output_root={tmp_path}", "resume=auto"]))
    assert result.run_dir == run_dir
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def _error_line(capsys, args: list[str]) -> tuple[int, str]:
    code = imgcls.cli.main(args)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return code, err


def test_resume_bad_input_is_one_line_and_leaves_the_folder_untouched(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path / "run")
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("hello")
    code, err = _error_line(capsys, ["train", f"resume={not_a_run}"])
    assert code == 2 and "is not an imgcls run directory" in err
    assert folder_bytes(not_a_run) == {"notes.txt": b"hello"}

    code, err = _error_line(capsys, ["train", f"resume={tmp_path / 'missing'}"])
    assert code == 2 and "no such run directory" in err

    last = run_dir / "checkpoints" / "last.pt"
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])
    before = folder_bytes(run_dir)
    code, err = _error_line(capsys, ["train", f"resume={run_dir}"])
    assert code == 2 and "last.pt is truncated or damaged" in err and "Errno" not in err
    assert folder_bytes(run_dir) == before

    foreign = train(compose([*TINY, "trainer.epochs=1", f"output_root={tmp_path / 'other'}"]))
    last.write_bytes((foreign.run_dir / "checkpoints" / "last.pt").read_bytes())
    before = folder_bytes(run_dir)
    code, err = _error_line(capsys, ["train", f"resume={run_dir}"])
    assert code == 2 and "does not fit this run's model" in err
    assert folder_bytes(run_dir) == before

    code, err = _error_line(capsys, ["train", f"resume={foreign.run_dir}"])
    assert code == 2 and "already completed" in err

    code, err = _error_line(capsys, ["train", f"resume={run_dir}", "seed=3"])
    assert code == 2 and "remove the other overrides" in err


def test_sigterm_stops_with_its_own_exit_code(tmp_path):
    from imgcls.base.errors import TrainingInterrupted
    from imgcls.train.signals import StopRequest

    with StopRequest() as stop:
        signal.raise_signal(signal.SIGTERM)
        time.sleep(0.01)
        assert stop.requested and stop.exit_code == 143
    assert TrainingInterrupted.exit_code == 130
