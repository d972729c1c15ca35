"""``imgcls train`` from the command line: runs, sweeps, bad input and run directories (in
process through ``imgcls.cli.main``; once through the real program, for its exit code and
stderr)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from conftest import TINY, run_cli

from imgcls import cli
from imgcls.base.folders import claim_dir, reset_unique_dirs


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


@pytest.mark.slow
def test_train_writes_a_complete_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *TINY, "trainer.epochs=1"]) == 0
    (run,) = run_dirs(tmp_path / "outputs")
    assert run.name.endswith("_simplecnn_synthetic")
    assert run.parent.parent == tmp_path / "outputs"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (run / ".hydra" / "hydra.yaml").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert "epoch 1/1" in (run / "train.log").read_text()
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_multirun_runs_four_jobs_into_one_sweep_directory(tmp_path, monkeypatch, capsys):
    args = ["train", "-m", "model=simplecnn,resnet", "seed=0,1", *TINY[1:], "trainer.epochs=1"]
    # resnet ignores the simplecnn-only keys, so drop them for this sweep
    args = [a for a in args if not a.startswith(("model.widths", "model.hidden"))]
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 0
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    runs = run_dirs(sweeps[0])
    assert len(runs) == 4
    assert sorted(r.name for r in runs) == [
        "0_simplecnn_synthetic",
        "1_simplecnn_synthetic",
        "2_resnet_synthetic",
        "3_resnet_synthetic",
    ]
    seeds = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed"
        seeds.append(summary["seed"])
        for name in ("metrics.csv", "train.log", "checkpoints/last.pt", ".hydra/config.yaml"):
            assert (run / name).is_file()
    assert sorted(seeds) == [0, 0, 1, 1]
    assert "4 of 4 jobs completed" in capsys.readouterr().out


BAD_INPUT = [
    (
        ["model=nope"],
        "unknown model 'nope'; available: airbench, alexnet, bncnn, densenet, efficientnet, lenet, resnet, seed_resnet, simplecnn, timm, torchvision, vgg",
    ),
    (["optimizer.lrr=0.1"], "unknown config key 'optimizer.lrr' — did you mean 'optimizer.lr'?"),
    (["trainer.epochs=abc"], "trainer.epochs=abc has the wrong type: expected an integer"),
    (["trainer.batch_size=0"], "trainer.batch_size=0 is invalid: it must be at least 1"),
    (["dataset=synthetic", "dataset.num_classes=1"], "dataset.num_classes=1 is invalid"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT, ids=[b[0][-1] for b in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(
    tmp_path, monkeypatch, capsys, overrides, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert cli.main(["train", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imgcls: error: {message}") and err.count("\n") == 1
    assert not list(tmp_path.rglob(".hydra")) and run_dirs(tmp_path) == []
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


@pytest.mark.slow
def test_bad_input_through_the_real_program(tmp_path):
    result = run_cli(["train", "dataset=synthetic", "dataset.num_classes=1"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "imgcls: error: dataset.num_classes=1 is invalid: a classifier needs at least 2"
    ]
    assert not list(tmp_path.rglob(".hydra"))


def test_debug_mode_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGCLS_DEBUG", "1")
    from imgcls.base.errors import UserError

    with pytest.raises(UserError):
        cli.main(["train", "model=nope"])


def test_bad_sweep_value_fails_before_any_job(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "-m", "model=simplecnn,nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def _claim(base: str, queue) -> None:
    queue.put(claim_dir(base))


def test_runs_started_in_the_same_second_never_share_a_directory(tmp_path):
    base = str(tmp_path / "2026-01-01" / "10-00-00_resnet_digits")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_claim, args=(base, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    claimed = sorted(queue.get() for _ in workers)
    assert len(set(claimed)) == 4
    assert all(Path(p).is_dir() for p in claimed)
    reset_unique_dirs()
