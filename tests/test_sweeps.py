"""Sweeps on Hydra's launchers and sweepers: joblib, submitit (local), Optuna, sweep resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import TINY

from imgcls import cli
from imgcls.app.sweeps import config_hash, sweep_jobs
from imgcls.base.record import Summary
from imgcls.config.compose import compose

TINY_ONE_EPOCH = [*TINY, "trainer.epochs=1"]


def only_sweep(root: Path) -> Path:
    (sweep,) = list((root / "outputs" / "multirun").glob("*/*"))
    return sweep


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


# The launchers start the jobs' processes themselves; the sweep's own process is this one
# (a program of its own imported torch a third time, for nothing the launcher does not do).


@pytest.mark.slow
def test_joblib_sweep_of_four_jobs_shares_the_cores(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        [
            "train",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "seed=0,1,2,3",
            *TINY_ONE_EPOCH,
        ]
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    sweep = only_sweep(tmp_path)
    runs = summaries(sweep)
    assert len(runs) == 4 and all(r["status"] == "completed" for r in runs)
    assert sorted(r["seed"] for r in runs) == [0, 1, 2, 3]
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert f"{threads} torch threads" in (sweep / "0_simplecnn_synthetic" / "train.log").read_text()


@pytest.mark.slow
def test_submitit_local_sweep_of_two_jobs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        [
            "train",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5",
            "seed=0,1",
            *TINY_ONE_EPOCH,
        ]
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    sweep = only_sweep(tmp_path)
    runs = summaries(sweep)
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    assert (sweep / ".submitit").is_dir()


@pytest.mark.slow
def test_optuna_study_records_a_failed_trial_and_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        [
            "train",
            "-m",
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.max_failure_rate=1.0",
            "hydra.sweeper.direction=maximize",
            *[a for a in TINY_ONE_EPOCH if not a.startswith("dataset.num_classes")],
            # 40 classes pass the options' rules (checked for every value before the sweep
            # starts) but 240 images cannot be split for them: that trial fails while running
            "dataset.num_classes=choice(40,2,3,4)",
        ]
    )
    output = capsys.readouterr()
    assert code == 1, output.out[-3000:] + output.err[-3000:]  # one job failed
    sweep = only_sweep(tmp_path)
    jobs = sweep_jobs(sweep)
    assert len(jobs) == 4
    assert sorted(j.status for j in jobs) == ["completed", "completed", "completed", "failed"]
    (failed,) = [j for j in jobs if j.status == "failed"]
    assert "cannot split 240 images of 40 classes" in failed.error
    results = (sweep / "optimization_results.yaml").read_text()
    assert "best_value" in results
    assert "3 of 4 jobs completed" in output.out + output.err


def test_optuna_search_space_preset_composes():
    cfg = compose(["hparams_search=digits_optuna"], return_hydra=True)
    params = cfg.hydra.sweeper.params
    assert set(params) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "regularizer.label_smoothing.alpha",
        "model.variant",
    }
    assert cfg.hydra.sweeper.max_failure_rate == 1.0


@pytest.mark.slow
def test_resumed_sweep_reruns_only_what_did_not_finish(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["train", "-m", "seed=0,1,2", *TINY_ONE_EPOCH]
    assert cli.main(args) == 0
    sweep = only_sweep(tmp_path)
    # Job 1 looks interrupted (its last.pt stays); job 2 looks killed before it wrote anything.
    job1, job2 = sweep / "1_simplecnn_synthetic", sweep / "2_simplecnn_synthetic"
    summary1 = json.loads((job1 / "summary.json").read_text())
    summary1["status"] = "interrupted"
    (job1 / "summary.json").write_text(json.dumps(summary1))
    for name in ("summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        (job2 / name).unlink()
    kept = (sweep / "0_simplecnn_synthetic" / "checkpoints" / "best.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main([*args, f"sweep.resume={sweep}"]) == 0
    stdout = capsys.readouterr().out
    assert "skipping a finished job: 0_simplecnn_synthetic" in stdout
    assert "resuming the unfinished job 1_simplecnn_synthetic" in stdout
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*"))) == 1, "no new sweep folder"
    assert (sweep / "0_simplecnn_synthetic" / "checkpoints" / "best.pt").stat().st_mtime_ns == kept
    for job in (job1, job2):
        assert json.loads((job / "summary.json").read_text())["status"] == "completed"
        assert len((job / "metrics.csv").read_text().splitlines()) == 2  # header + one epoch
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "0_simplecnn_synthetic",
        "1_simplecnn_synthetic",
        "2_simplecnn_synthetic",
    ]
    assert (sweep / "leaderboard.csv").is_file()
    jobs = json.loads((sweep / "jobs.json").read_text())  # rewritten after the resume
    assert [(Path(j["run_dir"]).name, j["status"]) for j in jobs] == [
        ("0_simplecnn_synthetic", "completed"),
        ("1_simplecnn_synthetic", "completed"),
        ("2_simplecnn_synthetic", "completed"),
    ]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_a_resumed_sweep_never_reuses_another_jobs_folder(tmp_path, monkeypatch, capsys):
    """Resumed with other sweep values, job 0 is another config: it gets a fresh folder."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "-m", "seed=0", *TINY_ONE_EPOCH]) == 0
    sweep = only_sweep(tmp_path)
    first = sweep / "0_simplecnn_synthetic"
    before = snapshot(first)
    assert cli.main(["train", "-m", "seed=1", *TINY_ONE_EPOCH, f"sweep.resume={sweep}"]) == 0
    assert snapshot(first) == before, "the first job's run was changed"
    second = sweep / "0_simplecnn_synthetic_1"
    assert json.loads((second / "summary.json").read_text())["seed"] == 1
    jobs = json.loads((sweep / "jobs.json").read_text())
    assert sorted(Path(j["run_dir"]).name for j in jobs) == [first.name, second.name]
    capsys.readouterr()


def test_sweep_resume_needs_a_sweep_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "-m", "seed=0,1", f"sweep.resume={tmp_path}"]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


def test_config_hash_ignores_launch_keys_only():
    base = compose(TINY)
    assert config_hash(base) == config_hash(
        compose([*TINY, "sweep.resume=somewhere", "output_root=elsewhere"])
    )
    assert config_hash(base) != config_hash(compose([*TINY, "seed=5"]))


@pytest.mark.parametrize("preset", ["slurm", "slurm_multigpu"])
def test_slurm_presets_compose(preset):
    cfg = compose([f"hydra/launcher={preset}", "hydra.launcher.partition=gpu"], return_hydra=True)
    launcher = cfg.hydra.launcher
    assert "SlurmLauncher" in launcher._target_
    assert launcher.partition == "gpu" and launcher.gpus_per_node >= 1
    assert launcher.max_num_timeout > 0 and launcher.timeout_min > 0


@pytest.mark.slow
def test_a_requeued_job_continues_from_its_own_last_checkpoint(tmp_path, monkeypatch, capsys):
    """What submitit does after a preemption: the same job runs again in its own folder.
    Then what SLURM does with a job killed with its node: it requeues it onto another node,
    where the summary says running on a host that cannot be checked; this job is the one now
    running. (One sweep for both: the second case was a test of its own in
    test_safety_signals.py, training the same run again.)"""
    monkeypatch.chdir(tmp_path)
    args = ["train", "-m", "seed=0", *TINY_ONE_EPOCH]
    assert cli.main(args) == 0
    sweep = only_sweep(tmp_path)
    job = sweep / "0_simplecnn_synthetic"
    summary = json.loads((job / "summary.json").read_text())
    summary["status"] = "interrupted"
    (job / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert cli.main([*args, f"hydra.sweep.dir={sweep}"]) == 0
    assert "resuming the unfinished job 0_simplecnn_synthetic" in capsys.readouterr().out
    assert json.loads((job / "summary.json").read_text())["status"] == "completed"
    assert len((job / "metrics.csv").read_text().splitlines()) == 2

    data = json.loads((job / "summary.json").read_text())
    data["status"] = "running"
    data["process"] = {**data["process"], "host": "elsewhere.invalid"}
    (job / "summary.json").write_text(json.dumps(data))
    assert Summary.read(job / "summary.json").status == "running"  # unverifiable: trusted
    assert cli.main([*args, f"hydra.sweep.dir={job.parent}"]) == 0, capsys.readouterr().err
    assert "resuming the unfinished job" in capsys.readouterr().out
    assert json.loads((job / "summary.json").read_text())["status"] == "completed"
