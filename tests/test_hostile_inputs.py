"""Hostile input to every command: one line, the right exit code, nothing changed or half-made.

Each case runs ``imgcls.cli.main`` in-process inside one shared workspace (a finished tiny
run, damaged checkpoints, a decompression-bomb PNG, a regular file where a folder is
expected, ...) and asserts: the exit code (2 for a user mistake), exactly one line on stderr
and no traceback, no file of the workspace changed, and no new file or folder left behind.
Most cases fail while the config is checked and take a fraction of a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FOLDER_MODEL, ONE_EPOCH, TINY, snapshot
from fabricate import write_bomb_png, write_folder
from PIL import Image

from imgcls import cli


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """The workspace: one finished run and the hostile files, shared by every case."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("hostile")
    run = train(compose([*ONE_EPOCH, f"output_root={root / 'outputs'}"])).run_dir
    best = (run / "checkpoints" / "best.pt").read_bytes()
    files = {"root": root, "run": run}

    def put(name: str, data: bytes) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name.split("/")[0].split(".")[0]] = path
        return path

    put("random.pt", np.random.default_rng(0).bytes(4096))
    put("truncated.pt", best[: len(best) // 2])
    put("empty.pt", b"")
    put("afile", b"a regular file where a folder is expected\n")
    import torch

    class Payload:  # what an attacker's checkpoint would carry
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": {}, "payload": Payload()}, root / "evil.pt")
    files["evil"] = root / "evil.pt"
    # run folders whose last.pt is damaged, to be continued with resume=
    for name, data in (
        ("resume_random", files["random"]),
        ("resume_truncated", files["truncated"]),
    ):
        copy = root / name
        shutil.copytree(run, copy)
        summary = json.loads((copy / "summary.json").read_text())
        summary.update(status="interrupted", pid=None)
        (copy / "summary.json").write_text(json.dumps(summary))
        (copy / "checkpoints" / "last.pt").write_bytes(data.read_bytes())
        files[name] = copy
    # images: a valid one; the same beside a decompression bomb; a bomb alone
    for name, content in (
        ("pics", ["valid"]),
        ("mixed", ["valid", "bomb"]),
        ("only_bomb", ["bomb"]),
    ):
        folder = root / name
        folder.mkdir()
        if "valid" in content:
            Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(folder / "valid.png")
        if "bomb" in content:
            write_bomb_png(folder / "bomb.png")
        files[name] = folder
    # folder datasets (train/ val/ test/) with one bad training image among good ones
    for name, writer in (("bomb_set", write_bomb_png), ("corrupt_set", _corrupt_png)):
        for split in ("train", "val", "test"):
            write_folder(root / name / split, classes=("a", "b"), per_class=4)
        writer(root / name / "train" / "b" / "bad.png")
        files[name] = root / name
    # sweeps and runs for report: malformed summaries beside a good run
    for name, text in (
        ("bytes", None),
        ("list", "[1, 2, 3]"),
        ("null", "null"),
        ("shapes", '{"status": "completed", "best": 5, "test": [1]}'),
    ):
        damaged = root / "reports" / name / "1_damaged"
        shutil.copytree(run, root / "reports" / name / "0_good")
        damaged.mkdir(parents=True)
        data = np.random.default_rng(1).bytes(300) if text is None else text.encode()
        (damaged / "summary.json").write_bytes(data)
    files["reports"] = root / "reports"
    jobs = root / "reports" / "bad_jobs"
    shutil.copytree(run, jobs / "0_good")
    (jobs / "jobs.json").write_text('[{"run_dir": 5}, "x", {"status": "failed"}]')
    (root / "empty_dir").mkdir()
    files["empty_dir"] = root / "empty_dir"
    return files


def _corrupt_png(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return path


def hostile(ws, monkeypatch, capsys, args: list[str], code: int = 2, message: str = "") -> str:
    """Run one command in the workspace; check the code, the one line, and the workspace."""
    monkeypatch.chdir(ws["root"])
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    before = snapshot(ws["root"])
    argv = [a.format(**ws) for a in args]
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    if code != 0:
        assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
        assert re.search(message, err), err
    else:
        assert err == ""
    after = snapshot(ws["root"])
    assert sorted(set(after) - set(before)) == [], "new files or folders were left behind"
    assert sorted(set(before) - set(after)) == [], "existing files or folders were removed"
    changed = [p for p in before if before[p] != after[p]]
    assert changed == [], f"existing files changed: {changed}"
    return err


# -- train: mistakes found while the config is checked (no Hydra, no folder) ---------------
CONFIG = [
    # 7: the keys of the model actually chosen, never the rejected key as a suggestion
    (
        ["model=simplecnn", "model.pretrained=true"],
        r"'model.pretrained'; valid keys under model: dropout, hidden, name, widths$",
    ),
    (
        ["model=lenet", "model.pretrained=true"],
        r"'model.pretrained'; valid keys under model: name, stem, variant$",
    ),
    (
        ["model=simplecnn", "model.foo=1"],
        r"unknown config key 'model.foo'; valid keys under model: dropout, hidden, name, widths$",
    ),
    (["model=lenet", "model.widths=[8]"], r"valid keys under model: name, stem, variant$"),
    (
        ["optimizer=adam", "optimizer.momentum=0.9"],
        r"'optimizer.momentum'; valid keys under optimizer: betas, decay_norm_and_bias, layer_decay, lr, name, weight_decay$",
    ),
    # 8: finite numbers in their ranges
    (["optimizer.lr=inf"], r"optimizer.lr=inf is invalid: use a finite number"),
    (["optimizer.lr=-inf"], r"optimizer.lr=-inf is invalid: use a finite number"),
    (["optimizer.lr=nan"], r"optimizer.lr=nan is invalid"),
    (["optimizer.lr=0"], r"optimizer.lr=0 is invalid: the learning rate must be positive"),
    (["optimizer=sgd", "optimizer.momentum=2"], r"optimizer.momentum=2 is invalid: use \[0, 1\)"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], r"optimizer.momentum=-0.5 is invalid"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], r"optimizer.betas=\[0.9, 1.5\] is invalid"),
    (
        ["optimizer=adamw", "optimizer.betas=[0.9]"],
        r"optimizer.betas=\[0.9\] is invalid: use two values",
    ),
    (["optimizer=rmsprop", "optimizer.eps=0"], r"optimizer.eps=0 is invalid: it must be positive"),
    (["optimizer.weight_decay=-1"], r"optimizer.weight_decay=-1 is invalid: it must be >= 0"),
    (
        ["regularizer.label_smoothing.alpha=1.5"],
        r"regularizer.label_smoothing.alpha=1.5 is invalid: use \[0, 1\)",
    ),
    (
        ["regularizer=[l2]", "regularizer.l2.weight_decay=-0.1"],
        r"regularizer.l2.weight_decay=-0.1 is invalid",
    ),
    (["scheduler=step", "scheduler.gamma=0"], r"scheduler.gamma=0 is invalid"),
    (["scheduler.warmup_epochs=-1"], r"scheduler.warmup_epochs=-1 is invalid"),
    (["scheduler.lr_min=inf"], r"scheduler.lr_min=inf is invalid: use a finite number"),
    (["trainer.batch_size=0"], r"trainer.batch_size=0 is invalid: it must be at least 1"),
    (["trainer.eval_batch_size=-4"], r"trainer.eval_batch_size=-4 is invalid"),
    (["trainer.gradient_clip=inf"], r"trainer.gradient_clip=inf is invalid: use a finite number"),
    (["trainer.ema.decay=1.0"], r"trainer.ema.decay=1.0 is invalid"),
    (["trainer.early_stopping.min_delta=nan"], r"trainer.early_stopping.min_delta=nan is invalid"),
    (["model=simplecnn", "model.dropout=1.5"], r"model.dropout=1.5 is invalid: use \[0, 1\)"),
    (["model=simplecnn", "model.widths=[8,0]"], r"model.widths=\[8, 0\] is invalid: use >= 1"),
    (["data.memory_mb=-1"], r"data.memory_mb=-1 is invalid"),
    (["seed=abc"], r"seed=abc has the wrong type"),
    (["-m", "seed=0,1", "optimizer.lr=inf"], r"optimizer.lr=inf is invalid"),
    # 1 and 3: folders that cannot be the run's
    (["hydra.run.dir={run}"], r"hydra.run.dir=.* already holds a run; continue it with resume="),
    (["hydra.run.dir={afile}"], r"cannot create the run directory .*afile: it is a file"),
    (
        ["hydra.run.dir={afile}/run"],
        r"cannot create the run directory .*afile/run: .*afile is a file",
    ),
    (
        ["hydra.run.dir=/proc/imgcls-hostile/run"],
        r"cannot create the run directory /proc/imgcls-hostile/run",
    ),
    (["output_root={afile}"], r"cannot create the folder .*afile/.*: .*afile is a file"),
    (["output_root=/proc/imgcls-hostile"], r"cannot create the folder /proc/imgcls-hostile"),
    (["-m", "seed=0,1", "output_root={afile}"], r"cannot create the folder .*afile/multirun"),
    (
        ["-m", "seed=0,1", "hydra.sweep.dir={afile}"],
        r"cannot create the sweep directory .*afile: it is a file",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CONFIG, ids=[" ".join(c[0]) for c in CONFIG])
def test_train_refuses_before_anything_runs(ws, monkeypatch, capsys, overrides, message):
    base = [] if any(o.startswith("model=") for o in overrides) else TINY
    hostile(ws, monkeypatch, capsys, ["train", *base, *overrides], message=message)


def test_a_refused_run_folder_keeps_every_file(ws, monkeypatch, capsys):
    """Case 1: training into a finished run's folder changes nothing in it (train.log too)."""
    err = hostile(ws, monkeypatch, capsys, ["train", *ONE_EPOCH, "hydra.run.dir={run}"])
    assert f"resume={ws['run']}" in err


def test_unknown_key_never_suggests_the_key_it_rejects(ws, monkeypatch, capsys):
    err = hostile(ws, monkeypatch, capsys, ["train", "model=simplecnn", "model.pretrained=true"])
    assert "did you mean" not in err and "pretrained" not in err.split("valid keys")[1]


# -- train: mistakes found once the run folder is claimed: it is removed again ---------------
LATE = [
    # 9: damaged checkpoints, in our words
    (["resume={resume_random}"], r"last.pt is not a PyTorch checkpoint"),
    (["resume={resume_truncated}"], r"last.pt is truncated or damaged"),
    (
        [*ONE_EPOCH, "finetune.from={random}"],
        r"finetune.from=.*random.pt is not a PyTorch checkpoint",
    ),
    (
        [*ONE_EPOCH, "finetune.from={evil}"],
        r"holds a Python object \(posix.system\).*never runs code",
    ),
    ([*ONE_EPOCH, "method=distill", "teacher={truncated}"], r"teacher=.*truncated.pt is truncated"),
    # 2: an image Pillow refuses, named
    (
        ["dataset=folder", "dataset.root={bomb_set}", *FOLDER_MODEL],
        r"cannot read image file .*bad.png: .*decompression bomb",
    ),
    (
        ["dataset=folder", "dataset.root={corrupt_set}", *FOLDER_MODEL],
        r"cannot read image file .*bad.png",
    ),
]


LATE_IDS = [
    "resume-random",
    "resume-truncated",
    "finetune-random",
    "finetune-evil",
    "teacher-truncated",
    "folder-bomb",
    "folder-corrupt",
]


@pytest.mark.parametrize(("args", "message"), LATE, ids=LATE_IDS)
def test_train_fails_in_one_line_and_leaves_no_folder(ws, monkeypatch, capsys, args, message):
    err = hostile(ws, monkeypatch, capsys, ["train", *args], message=message)
    assert "weights_only=False" not in err and "Errno 22" not in err


def test_a_tracker_that_cannot_start(ws, monkeypatch, capsys):
    """Case 4: an unreachable MLflow server (a closed local port): one line, no folder."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    args = ["train", *ONE_EPOCH, "logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9"]
    hostile(ws, monkeypatch, capsys, args, message=r"logger=mlflow could not start: ")


# -- eval --------------------------------------------------------------------------------
EVAL = [
    (["run={random}"], r"random.pt is not a PyTorch checkpoint"),
    (["run={truncated}"], r"truncated.pt is truncated or damaged"),
    (["run={empty}"], r"empty.pt is empty"),
    (["run={evil}"], r"holds a Python object \(posix.system\)"),
    (["run={empty_dir}"], r"is not an imgcls run directory"),
    (["run={run}", "checkpoint={empty}"], r"empty.pt is empty"),
    (["run={run}", "topk=[0]"], r"every k must be at least 1"),
    (["run={run}", "split=train"], r"unknown split 'train'"),
    (["run={run}", "out={afile}"], r"cannot create the output folder .*afile: it is a file"),
]


@pytest.mark.parametrize(("args", "message"), EVAL, ids=[" ".join(a[0]) for a in EVAL])
def test_eval(ws, monkeypatch, capsys, args, message):
    err = hostile(ws, monkeypatch, capsys, ["eval", *args], message=message)
    assert "weights_only=False" not in err


# -- predict -----------------------------------------------------------------------------
PREDICT = [
    (["images={pics}", "topk=0"], r"topk=0 is invalid"),
    (["images={pics}", "topk=-3"], r"topk=-3 is invalid"),
    (
        ["images={only_bomb}"],
        r"none of the 1 files at images=.* could be read .*bomb.png: .*decompression bomb",
    ),
    (["images={pics}", "out={afile}"], r"cannot create the output folder .*afile: it is a file"),
    (
        ["images={pics}", "out=/proc/imgcls-hostile/predictions"],
        r"cannot create the output folder /proc/",
    ),
    (["images={root}/nothing-here"], r"no images found at images="),
]


@pytest.mark.parametrize(("args", "message"), PREDICT, ids=[" ".join(a[0]) for a in PREDICT])
def test_predict(ws, monkeypatch, capsys, args, message):
    hostile(ws, monkeypatch, capsys, ["predict", "run={run}", *args], message=message)


def test_predict_skips_a_decompression_bomb_and_classifies_the_rest(ws, tmp_path, capsys):
    """Case 2: the bomb is named and skipped; the valid image beside it is classified."""
    out = tmp_path / "predicted"
    args = ["predict", f"run={ws['run']}", f"images={ws['mixed']}", f"out={out}"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "skipped" in line and "bomb.png" in line and "decompression bomb" in line
    assert "1 images classified, 1 skipped" in captured.out
    document = json.loads((out / "predictions.json").read_text())
    assert [Path(r["file"]).name for r in document["predictions"]] == ["valid.png"]
    assert [Path(s["file"]).name for s in document["skipped"]] == ["bomb.png"]


# -- report ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["bytes", "list", "null", "shapes"])
def test_report_lists_a_malformed_summary_and_goes_on(ws, monkeypatch, capsys, tmp_path, damage):
    """Case 5: random bytes, [1,2,3], null or sections of the wrong shape in summary.json."""
    out = tmp_path / "report"
    hostile(ws, monkeypatch, capsys, ["report", f"{{reports}}/{damage}", "--out", str(out)], 0)
    board = (out / "leaderboard.csv").read_text()
    assert "1_damaged" in board and board.count(",completed,") == 1
    if damage != "shapes":  # a summary with sections of the wrong shape still says completed
        assert ",unreadable," in board


def test_report_with_a_malformed_jobs_file(ws, monkeypatch, capsys, tmp_path):
    out = tmp_path / "report"
    hostile(ws, monkeypatch, capsys, ["report", "{reports}/bad_jobs", "--out", str(out)], 0)
    assert (out / "leaderboard.csv").read_text().count(",completed,") == 1


REPORT = [
    (["{afile}"], r"not a directory: .*afile"),
    (["{empty_dir}"], r"holds no imgcls runs"),
    (["{run}", "--out", "{afile}"], r"cannot create the report folder .*afile: it is a file"),
    (["{run}", "--plots"], r"unknown report option '--plots'"),
]


@pytest.mark.parametrize(("args", "message"), REPORT, ids=[" ".join(a[0]) for a in REPORT])
def test_report(ws, monkeypatch, capsys, args, message):
    hostile(ws, monkeypatch, capsys, ["report", *args], message=message)


# -- preview -----------------------------------------------------------------------------
PREVIEW = [
    (["augment=nope"], r"unknown augment 'nope'"),
    (["images=0"], r"images=0 is invalid"),
    (["augment.color.p=inf"], r"augment.color.p=inf is invalid"),
    (
        ["dataset=synthetic", "dataset.noise=nan"],
        r"dataset.noise=nan is invalid: use a finite number",
    ),
    (
        ["dataset=folder", "dataset.root={bomb_set}", "dataset.stats_images=1"],
        r"cannot read image file .*bad.png: .*decompression bomb",
    ),
    (
        ["dataset=synthetic", "dataset.num_samples=40", "output_root={afile}"],
        r"cannot create the folder .*afile",
    ),
]


@pytest.mark.parametrize(("args", "message"), PREVIEW, ids=[" ".join(a[0]) for a in PREVIEW])
def test_preview(ws, monkeypatch, capsys, args, message):
    hostile(ws, monkeypatch, capsys, ["preview", *args], message=message)
