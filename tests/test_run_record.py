"""The run record: RunFolder and SweepFolder name what a run and a sweep really write,
Summary reads and writes summary.json (tolerant of older and damaged files), and a run's
overrides are read with Hydra's own parser."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import PLOTS, TINY

from imgcls.base.errors import UserError
from imgcls.base.record import (
    RunFolder,
    Summary,
    SweepFolder,
    find_runs,
    parse_override,
    parse_overrides,
    read_overrides,
)

ONE_EPOCH = [o for o in TINY if not o.startswith("trainer.epochs=")] + ["trainer.epochs=1"]


# -- Summary --------------------------------------------------------------------------------
def full_summary() -> Summary:
    return Summary(
        status="completed",
        run_dir="/runs/a",
        model="simplecnn",
        dataset="synthetic",
        seed=3,
        hyperparameters={"lr": 0.1},
        config_hash="abc",
        started_at="2026-12-01T10:00:00",
        device="cpu",
        precision="32",
        params=123,
        flops=456,
        classes=["a", "b"],
        data={"channels": 1},
        method="standard",
        finetune=None,
        init_from_data_seconds=None,
        versions={"torch": "2"},
        git_commit=None,
        pid=42,
        timings={"startup": 1.0, "compile": None},
        epochs_completed=2,
        steps=20,
        best={"epoch": 2, "metric": "val_accuracy", "value": 0.9},
        test={"accuracy": 0.8, "loss": 0.5},
        train_seconds=1.5,
        stopped_early=False,
        extra={"target": {"accuracy": 0.7}},
        throughput={"images_per_second": 10.0, "mfu": None},
        finished_at="2026-12-01T10:01:00",
        wall_seconds=2.0,
    )


def test_summary_round_trip(tmp_path):
    summary = full_summary()
    path = tmp_path / "summary.json"
    summary.write(path)
    assert Summary.read(path) == summary
    data = json.loads(path.read_text())
    assert data == summary.to_dict()
    # the keys a run writes, in the order it always wrote them; unknown-but-None start facts
    # (finetune, git_commit, init_from_data_seconds) are written as null
    assert list(data) == [
        "status",
        "run_dir",
        "model",
        "dataset",
        "seed",
        "hyperparameters",
        "config_hash",
        "started_at",
        "device",
        "precision",
        "params",
        "flops",
        "classes",
        "data",
        "method",
        "finetune",
        "init_from_data_seconds",
        "versions",
        "git_commit",
        "pid",
        "process",
        "timings",
        "epochs_completed",
        "steps",
        "best",
        "test",
        "train_seconds",
        "stopped_early",
        "target",
        "throughput",
        "finished_at",
        "wall_seconds",
    ]
    assert data["git_commit"] is None and "error" not in data and "resumed" not in data
    assert not list(tmp_path.glob("*.tmp")), "the write is atomic"


def test_a_failed_jobs_stub_summary_has_only_what_it_knows(tmp_path):
    path = tmp_path / "summary.json"
    Summary(status="failed", error="boom", run_dir="/r", config_hash="h").write(path)
    assert json.loads(path.read_text()) == {
        "status": "failed",
        "run_dir": "/r",
        "config_hash": "h",
        "error": "boom",
    }


def test_an_older_summary_with_missing_keys_reads_with_defaults(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"status": "completed", "test": {"accuracy": 0.5}, "new": 1}))
    summary = Summary.read(path)
    assert summary.status == "completed" and summary.test == {"accuracy": 0.5}
    assert summary.best is None and summary.seed is None and summary.best_value is None
    assert summary.extra == {"new": 1}  # unknown keys are kept, and written back
    assert summary.to_dict() == {"status": "completed", "test": {"accuracy": 0.5}, "new": 1}
    assert Summary.read(_write(tmp_path, {})).status == "unknown"


def test_sections_of_the_wrong_shape_are_dropped(tmp_path):
    damaged = {"status": 5, "best": [1], "test": "x", "seed": "3", "params": True, "pid": 7}
    summary = Summary.read(_write(tmp_path, damaged))
    assert summary.status == "5"
    assert summary.best is None and summary.test is None
    assert summary.seed is None and summary.params is None and summary.pid == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{", "is not valid JSON"),
        (b"{not json", "is not valid JSON"),
        (b"[1, 2, 3]", "holds a JSON list, not an object"),
        (b"null", "holds null, not an object"),
    ],
)
def test_a_damaged_summary_is_one_user_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as caught:
        Summary.read(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UserError, match="is unreadable"):
        Summary.read(tmp_path / "missing.json")


def _write(folder: Path, data) -> Path:
    path = folder / "s.json"
    path.write_text(json.dumps(data))
    return path


# -- overrides -----------------------------------------------------------------------------
def test_overrides_are_read_with_hydras_parser():
    quoted, listed, added, forced, deleted, group, hydra, plain = parse_overrides(
        [
            "dataset.root='/data/my images'",
            "regularizer=[l2,label_smoothing]",
            "+seed=3",
            "++trainer.ema.decay=0.99",
            "~trainer.ema",
            "model=lenet",
            "hydra.run.dir=/tmp/x",
            "optimizer.lr=0.05",
        ]
    )
    assert quoted.key == "dataset.root" and quoted.value == "/data/my images"
    assert quoted.value_text == "'/data/my images'" and quoted.text.startswith("dataset.root=")
    assert listed.key == "regularizer" and listed.value == ["l2", "label_smoothing"]
    assert listed.value_text == "[l2,label_smoothing]"
    assert (added.key, added.kind, added.value, added.text) == ("seed", "add", 3, "+seed=3")
    assert (forced.key, forced.kind, forced.value) == ("trainer.ema.decay", "force_add", 0.99)
    assert deleted.key == "trainer.ema" and deleted.is_delete and deleted.value_text is None
    assert (group.key, group.value, group.is_hydra) == ("model", "lenet", False)
    assert hydra.is_hydra and hydra.key == "hydra.run.dir"
    assert parse_override("hydra/launcher=joblib").is_hydra
    assert plain.value == 0.05 and str(plain) == "optimizer.lr=0.05"


def test_overrides_with_commas_and_escapes_keep_their_text():
    comma = parse_override("dataset.root='a,b'")
    assert comma.value == "a,b" and comma.value_text == "'a,b'"
    escaped = parse_override(r"model.name='it\'s'")
    assert escaped.value == "it's"
    sweep = parse_override("seed=0,1")  # only in files written by hand
    assert sweep.key == "seed" and sweep.value_text == "0,1"


def test_an_override_hydra_cannot_parse_is_kept_as_written():
    first, hostile, last = parse_overrides(["a=1", "+model=bad<model>", "b=2"])
    assert (first.kind, last.kind) == ("change", "change")
    assert (hostile.key, hostile.value_text, hostile.kind) == ("model", "bad<model>", "unparsed")
    assert hostile.text == "+model=bad<model>"
    with pytest.raises(UserError, match="cannot parse the override"):
        parse_override("key with space=1")


def test_read_overrides_missing_empty_and_damaged(tmp_path):
    path = tmp_path / "overrides.yaml"
    assert read_overrides(path) == []
    path.write_text("")
    assert read_overrides(path) == []
    path.write_text(yaml.safe_dump(["seed=1", "model=lenet"]))
    assert [o.key for o in read_overrides(path)] == ["seed", "model"]
    for damaged in ("key: [unclosed", "{a: 1}"):
        path.write_text(damaged)
        with pytest.raises(UserError, match=str(path)):
            read_overrides(path)


# -- the folders, against what a real run and sweep write ------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A two-job sweep through the real CLI (Hydra writes .hydra/ and multirun.yaml), with
    the tensorboard logger, and an ``imgcls eval`` of its first job."""
    import os

    from imgcls import cli

    root = tmp_path_factory.mktemp("record")
    before = Path.cwd()
    os.chdir(root)
    try:
        args = ["train", "-m", "seed=0,1", *ONE_EPOCH, PLOTS, "logger=[csv,tensorboard]"]
        assert cli.main(args) == 0
        (sweep_dir,) = (root / "outputs" / "multirun").glob("*/*")
        job = SweepFolder(sweep_dir).job_folders()[0]
        assert cli.main(["eval", f"run={job.path}", "device=cpu"]) == 0
    finally:
        os.chdir(before)
    return sweep_dir


def test_every_run_folder_path_is_what_a_run_writes(sweep):
    jobs = SweepFolder(sweep).job_folders()
    assert [j.path.name.split("_", 1)[0] for j in jobs] == ["0", "1"]
    run = jobs[0]
    files = [
        run.config_file,
        run.overrides_file,
        run.hydra_file,
        run.train_log,
        run.metrics_csv,
        run.summary_json,
        run.last_checkpoint,
        run.best_checkpoint,
        run.curves_png,
        run.confusion_matrix_png,
        run.predictions_png,
        run.cam_png,
        run.test_metrics_json,
        run.report_html,
    ]
    for path in files:
        assert path.is_file(), path
    for folder in (run.hydra_dir, run.checkpoints, run.plots, run.tensorboard, run.eval_dir):
        assert folder.is_dir(), folder
    assert run.checkpoint("last") == run.last_checkpoint and run.has_checkpoints()
    assert run.holds_run() and run.is_run() and set(run.startup_paths) >= set(run.run_paths[2:])
    assert [p.parent.parent for p in run.eval_metrics_files()] == [run.eval_dir]
    # every file at the top of the run folder is one the record names
    named = {p for p in (*files, *run.startup_paths, run.eval_dir) if p.parent == run.path}
    assert set(run.path.iterdir()) == named
    summary = run.read_summary()
    assert summary.status == "completed" and summary.seed == 0 and summary.best_value is not None
    assert Summary.read(run.summary_json).to_dict() == json.loads(run.summary_json.read_text())
    assert [o.text for o in run.read_overrides()][0] == "seed=0"


def test_every_sweep_folder_path_is_what_a_sweep_writes(sweep):
    folder = SweepFolder(sweep)
    for path in (
        folder.multirun_yaml,
        folder.jobs_json,
        folder.leaderboard_csv,
        folder.leaderboard_md,
        folder.report_html,
    ):
        assert path.is_file(), path
    assert folder.has_jobs()
    assert [r.path for r in find_runs(sweep)] == [j.path for j in folder.job_folders()]
    named = {folder.multirun_yaml, folder.jobs_json, folder.leaderboard_csv}
    named |= {folder.leaderboard_md, folder.report_html, *(j.path for j in folder.job_folders())}
    assert set(sweep.iterdir()) == named


def test_export_folder_is_where_export_writes(sweep):
    from imgcls.app.export import default_out_dir

    run = SweepFolder(sweep).job_folders()[0]
    loaded = SimpleNamespace(run_dir=run.path, checkpoint=run.best_checkpoint)
    assert default_out_dir(loaded, "best", "onnx") == run.export_folder("onnx", "best")
    assert run.export_folder("onnx", "best").parent == run.export_dir


def test_a_run_folder_is_a_value_made_from_any_path(tmp_path):
    run = RunFolder(str(tmp_path))
    assert run.path == tmp_path and RunFolder.of(run) is run and RunFolder.of(tmp_path) == run
    assert not run.holds_run() and not run.is_run() and not run.has_checkpoints()
    assert run.eval_metrics_files() == [] and run.read_overrides() == []
    with pytest.raises(UserError, match="summary.json is unreadable"):
        run.read_summary()
