"""A user's files are never touched: every folder a command writes into that the user names
(``hydra.run.dir``, ``hydra.sweep.dir``, ``output_root``, ``out=``, ``--out``) must be new or
empty (or hold an earlier output of the same command), an empty or root one is refused, and
the clean-up of a failed start removes only what that start made.

Each refusal is checked the same way: exit code 2, one line on stderr, no traceback, and every
file of the workspace byte-identical afterwards, with nothing new left behind.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import pytest
from conftest import FOLDER_MODEL, ONE_EPOCH, PLOTS
from fabricate import write_folder

from imgcls import cli

LONG = "n" * 300  # longer than any file system allows for one name (ENAMETOOLONG)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One finished tiny run, for the commands that read a run (eval, predict, export, report)."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("safety_run")
    return train(compose([*ONE_EPOCH, PLOTS, f"output_root={root / 'outputs'}"])).run_dir


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """The workspace (the working directory): a user's folder of their own files."""
    user = tmp_path / "user"
    (user / "plots").mkdir(parents=True)
    (user / "tensorboard").mkdir()
    (user / "plots" / "curves.png").write_bytes(b"the user's own plot")
    (user / "tensorboard" / "events.out").write_bytes(b"the user's own events")
    (user / "report.html").write_text("<html>the user's own report</html>")
    (user / "test_metrics.json").write_text('{"mine": true}')
    (user / "metrics.json").write_text('{"mine": true}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return tmp_path


def contents(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")
    }


def refused(ws: Path, capsys, args: list[str], message: str = "") -> str:
    """Run a command that must be refused: exit 2, one line, the workspace byte-identical."""
    before = contents(ws)
    root_before = set(os.listdir("/"))
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert "internal error" not in err
    assert re.search(message, err), err
    assert contents(ws) == before, "the workspace changed"
    assert set(os.listdir("/")) == root_before, "something was written into /"
    return err


# -- 1 and 2: a run into a folder of the user's --------------------------------------------
@pytest.mark.parametrize(
    "failure",
    [[], ["dataset=folder", "dataset.root=no_such_folder"], ["trainer.device=cuda"]],
    ids=["plain", "dataset-root-typo", "no-cuda"],
)
def test_a_run_into_a_users_folder_is_refused_and_touches_nothing(ws, capsys, failure):
    """Case 1 and 2: the user's plots/, tensorboard/, report.html and test_metrics.json stay
    byte-identical, whether or not the run would have failed before training."""
    if failure == ["trainer.device=cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: trainer.device=cuda would not fail")
    refused(ws, capsys, ["train", *ONE_EPOCH, *failure, "hydra.run.dir=user"])


def test_the_refusal_names_the_folder_and_what_it_holds(ws, capsys):
    err = refused(ws, capsys, ["train", *ONE_EPOCH, "hydra.run.dir=user"])
    assert (
        "hydra.run.dir=user is not empty (it holds metrics.json, plots, report.html and 2 more)"
        in err
    )


def test_a_sweep_into_a_users_folder_is_refused(ws, capsys):
    refused(
        ws,
        capsys,
        ["train", "-m", *ONE_EPOCH, "seed=0,1", "hydra.sweep.dir=user"],
        r"hydra.sweep.dir=user is not empty",
    )


def test_a_preview_into_a_users_folder_is_refused(ws, capsys):
    args = ["preview", "dataset=synthetic", "augment=none", "hydra.run.dir=user"]
    refused(ws, capsys, args, r"hydra.run.dir=user is not empty")


def _corrupt_folder_dataset(root: Path) -> Path:
    """A folder dataset with one training image Pillow refuses: the run fails after its run
    folder was claimed, while the data is loaded."""
    for split in ("train", "val", "test"):
        write_folder(root / split, classes=("a", "b"), per_class=4)
    (root / "train" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


@pytest.mark.parametrize("named", ["empty", "new/a/b"])
def test_a_failed_start_removes_only_what_it_made(ws, capsys, named):
    """An empty folder the user made stays (empty); folders the run made are removed."""
    data = _corrupt_folder_dataset(ws / "data")
    (ws / "empty").mkdir()
    before = contents(ws)
    args = ["train", "dataset=folder", f"dataset.root={data}", *FOLDER_MODEL]
    assert cli.main([*args, f"hydra.run.dir={named}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.png" in err, err
    assert contents(ws) == before


def test_a_failed_start_keeps_an_output_root_that_existed(ws, capsys):
    """Under a generated name: the run folder and the date folder it made go, the output
    root that existed before stays, with the user's file in it."""
    data = _corrupt_folder_dataset(ws / "data")
    (ws / "runs").mkdir()
    (ws / "runs" / "notes.txt").write_text("mine")
    before = contents(ws)
    args = ["train", "dataset=folder", f"dataset.root={data}", *FOLDER_MODEL, "output_root=runs"]
    assert cli.main(args) == 2
    assert "bad.png" in capsys.readouterr().err
    assert contents(ws) == before


def test_remove_unstarted_removes_only_the_folders_made(tmp_path):
    """The clean-up's own rule: the run's files go, and of the folders only those made."""
    from imgcls.base.folders import claim_run_folder
    from imgcls.base.runs import remove_unstarted

    (tmp_path / "kept").mkdir()
    folder, made = claim_run_folder(tmp_path / "kept" / "a" / "b")
    assert made == (tmp_path / "kept" / "a", tmp_path / "kept" / "a" / "b")
    (folder / "train.log").write_text("a start")
    remove_unstarted(folder, made)
    assert list((tmp_path / "kept").iterdir()) == []


# -- 3: an empty or root folder --------------------------------------------------------------
EMPTY_OR_ROOT = [
    (["output_root="], r"output_root is empty: name a folder"),
    (["output_root=/"], r"output_root=/ is the filesystem root"),
    (["hydra.run.dir="], r"hydra.run.dir is empty"),
    (["hydra.run.dir=/"], r"hydra.run.dir=/ is the filesystem root"),
    (["-m", "seed=0,1", "output_root="], r"output_root is empty"),
    (["-m", "seed=0,1", "hydra.sweep.dir="], r"hydra.sweep.dir is empty"),
    (["-m", "seed=0,1", "hydra.sweep.dir=/"], r"hydra.sweep.dir=/ is the filesystem root"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), EMPTY_OR_ROOT, ids=[" ".join(c[0]) for c in EMPTY_OR_ROOT]
)
def test_an_empty_or_root_output_folder_is_refused(ws, capsys, overrides, message):
    """Case 3: ``output_root=`` used to write the run into /<date>/..."""
    refused(ws, capsys, ["train", *ONE_EPOCH, *overrides], message)


def test_preview_refuses_an_empty_output_root(ws, capsys):
    args = ["preview", "dataset=synthetic", "augment=none", "output_root="]
    refused(ws, capsys, args, r"output_root is empty")


# -- the outputs of eval, predict, export and report ------------------------------------------
def _commands(run: Path, out: str) -> dict[str, list[str]]:
    return {
        "eval": ["eval", f"run={run}", f"out={out}"],
        "predict": ["predict", f"run={run}", f"images={run / 'plots'}", f"out={out}"],
        "export": ["export", f"run={run}", "format=torchscript", f"out={out}"],
        "report": ["report", str(run), "--out", out],
        "report-html": ["report", "--html", str(run), "--out", out],
    }


COMMANDS = ["eval", "predict", "export", "report", "report-html"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_folder_of_the_users_is_refused(ws, capsys, run, command):
    refused(ws, capsys, _commands(run, "user")[command], r"out.user is not empty \(it holds")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_too_long_is_one_line(ws, capsys, run, command):
    """Case 9: a 300-character folder name is named with the reason, not an internal error."""
    refused(ws, capsys, _commands(run, LONG)[command], r"File name too long")


@pytest.mark.parametrize("key", ["hydra.run.dir", "output_root"])
def test_a_run_folder_name_too_long_is_one_line(ws, capsys, key):
    err = refused(ws, capsys, ["train", *ONE_EPOCH, f"{key}={LONG}"], r"File name too long")
    assert LONG in err


def test_a_report_never_overwrites_a_users_html_file(ws, capsys, run):
    args = ["report", "--html", str(run), "--out", "user/report.html"]
    refused(ws, capsys, args, r"user/report.html exists and imgcls did not write it")


def test_a_leaderboard_never_overwrites_a_users_file(ws, capsys):
    """Without --out the leaderboard goes into the folder given: a leaderboard.csv there that
    imgcls did not write stays."""
    (ws / "user" / "leaderboard.csv").write_text("my,own\n1,2\n")
    refused(ws, capsys, ["report", "user"], r"leaderboard.csv exists and imgcls did not write it")


@pytest.mark.parametrize("command", ["eval", "predict", "report", "report-html"])
def test_an_earlier_output_of_the_same_command_is_replaced(ws, capsys, run, command):
    """A folder holding the command's own earlier output may be written again."""
    args = _commands(run, "again")[command]
    assert cli.main(args) == 0
    first = contents(ws / "again")
    assert cli.main(args) == 0
    assert set(contents(ws / "again")) == set(first)
    assert capsys.readouterr().err.strip() == ""


# -- read-only places ---------------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only for this process (as root, chmod would not stop a write):
    creating a folder, a temporary file or a file opened for writing in it fails with EROFS."""
    places: list[Path] = []

    def blocked(path) -> bool:
        target = Path(path).absolute()
        return any(target == p or p in target.parents for p in places)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_mkdir, real_mkstemp, real_mkdtemp = os.mkdir, tempfile.mkstemp, tempfile.mkdtemp

    def mkdir(path, *args, **kwargs):
        return refuse(path) if blocked(path) else real_mkdir(path, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        return refuse(dir) if blocked(dir) else real_mkstemp(*args, dir=dir, **kwargs)

    def mkdtemp(*args, dir=None, **kwargs):
        return refuse(dir) if blocked(dir) else real_mkdtemp(*args, dir=dir, **kwargs)

    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def open_(path, flags, *args, dir_fd=None, **kwargs):
        where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / path if dir_fd else Path(path)
        if flags & writing and blocked(where):  # the atomic writer opens relative to a folder
            return refuse(where)
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return lambda path: places.append(Path(path).absolute())


@pytest.mark.parametrize("html", [True, False], ids=["html", "leaderboard"])
def test_report_on_a_read_only_run_folder_is_one_line(ws, capsys, run, read_only, html):
    """Case 9: ``imgcls report [--html] <run>`` on a read-only run folder names it."""
    read_only(run)
    args = ["report", *(["--html"] if html else []), str(run)]
    refused(ws, capsys, args, rf"cannot write .*{re.escape(str(run))}.*Read-only file system")


@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_a_read_only_output_folder_is_one_line(ws, capsys, run, read_only, command):
    read_only(ws / "locked")
    args = _commands(run, "locked/out")[command]
    refused(ws, capsys, args, r"locked.*Read-only file system")
