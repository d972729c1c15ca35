"""Run files that survive damage, and an environment that fails in one line.

metrics.csv rows are whole lines (a failed write is undone; a row cut by a crash is dropped
on resume with one log line); resume checks every file it reads; a full disk, a run folder
deleted or renamed during the run, and running out of memory are one line naming the file
or the keys, exit 2, with no temporary file left. Disk failures are injected (an OSError
from the writer), never made for real.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import ONE_EPOCH

from imgcls import cli
from imgcls.base.errors import error_line
from imgcls.base.runs import MetricsWriter, truncate_metrics

NO_SPACE = "No space left on device"


def full_disk(path: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE, path)


def fd_name(fd: int) -> str:
    """The file an open descriptor writes to (Linux)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def one_line_error(capsys, args: list[str], code: int = 2) -> str:
    """Run imgcls in-process; assert the exit code and one stderr line without a traceback."""
    os.environ.pop("IMGCLS_DEBUG", None)
    os.environ.pop("HYDRA_FULL_ERROR", None)
    assert cli.main(args) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert "internal error" not in err
    return err


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished one-epoch run, copied by the tests that resume or damage it."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("finished")
    return train(compose([*ONE_EPOCH, f"output_root={root}"])).run_dir


def unfinished_copy(finished: Path, where: Path, epochs: int = 2) -> Path:
    """A copy of ``finished`` that stopped after its first epoch of ``epochs``."""
    run = where / "run"
    shutil.copytree(finished, run)
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 1\n", f"epochs: {epochs}\n", 1))
    summary = json.loads((run / "summary.json").read_text())
    summary.update(status="interrupted", pid=None)
    (run / "summary.json").write_text(json.dumps(summary))
    return run


# -- metrics.csv ------------------------------------------------------------------------------
def test_a_failed_metrics_write_leaves_only_whole_rows(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path, ["epoch", "loss"])
    writer.write({"epoch": 1, "loss": 0.5})
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        if fd_name(fd).endswith("metrics.csv"):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise full_disk()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError) as failed:
        writer.write({"epoch": 2, "loss": 0.25})
    monkeypatch.undo()
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(path)
    assert path.read_bytes() == before  # the half row was cut off again
    writer.write({"epoch": 2, "loss": 0.25})
    assert path.read_bytes() == b"epoch,loss\r\n1,0.5\r\n2,0.25\r\n"


def test_a_row_after_a_cut_one_starts_on_its_own_line(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n1,0.5\n2,0.2")  # a crash cut the last row
    MetricsWriter(path, ["epoch", "loss"]).write({"epoch": 3, "loss": 0.1})
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.2", "3,0.1"]


def test_resume_drops_cut_and_garbage_rows_with_one_log_line(tmp_path, caplog):
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"epoch,loss\n1,0.5\nxx,yy,zz\n\xff\xfe\n2,0.2\n3,0.")
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        truncate_metrics(path, epochs_done=2)
    assert path.read_bytes() == b"epoch,loss\r\n1,0.5\r\n2,0.2\r\n"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert str(path) in lines[0] and "dropped 3 damaged row(s)" in lines[0]
    assert "line 3" in lines[0] and "line 4" in lines[0] and "line 6: cut short" in lines[0]


def test_resume_continues_after_a_cut_row_and_every_row_is_whole(finished, tmp_path, capsys):
    run = unfinished_copy(finished, tmp_path)
    metrics = run / "metrics.csv"
    header, first = metrics.read_text().splitlines()
    metrics.write_text(f"{header}\n{first}\ngarbage\n{first[: len(first) // 2]}")
    assert cli.main(["train", f"resume={run}"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert len(re.findall(r"dropped 2 damaged row\(s\)", captured.out)) == 1
    rows = metrics.read_text().splitlines()
    assert rows[:2] == [header, first] and len(rows) == 3
    assert rows[2].startswith("2,") and rows[2].count(",") == header.count(",")
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


# -- resume refuses a damaged file with one line naming it, and writes nothing ----------------
DAMAGED = [
    (".hydra/config.yaml", b"", r"config.yaml is empty: .*full disk"),
    (".hydra/config.yaml", b"- 1\n- 2\n", r"config.yaml is damaged: it holds a list"),
    (".hydra/config.yaml", b"model: [\n", r"config.yaml is damaged: not valid YAML"),
    (".hydra/config.yaml", b"\xff\xfe\x00garbage", r"config.yaml is damaged: it is not UTF-8"),
    (".hydra/overrides.yaml", b"[1, {a: 2}]\n", r"overrides.yaml is not a list of overrides"),
    ("summary.json", b"", r"summary.json is not valid JSON"),
    ("summary.json", b'{"status": [1]}', r"summary.json is damaged: its status"),
    ("metrics.csv", b"\x00\x01garbage\n1,2\n", r"metrics.csv is damaged: its first line"),
    ("checkpoints/last.pt", b"", r"last.pt is empty"),
]


@pytest.mark.parametrize(("name", "data", "message"), DAMAGED, ids=[d[0] for d in DAMAGED])
def test_resume_names_the_damaged_file(finished, tmp_path, capsys, name, data, message):
    run = unfinished_copy(finished, tmp_path)
    (run / name).write_bytes(data)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    err = one_line_error(capsys, ["train", f"resume={run}"])
    assert re.search(message, err), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_refuses_a_checkpoint_with_damaged_counts_and_random_states(
    finished, tmp_path, capsys
):
    import torch

    run = unfinished_copy(finished, tmp_path)
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    for damage, message in (
        ({"epoch": "two"}, r"last.pt is damaged: its 'epoch' is 'two', not a count"),
        ({"rng": {"python": 5}}, r"last.pt is damaged: its random-number states"),
    ):
        torch.save({**state, **damage}, last)
        err = one_line_error(capsys, ["train", f"resume={run}"])
        assert re.search(message, err), err


# -- a full disk -------------------------------------------------------------------------------
def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_temporary(
    tmp_path, capsys, monkeypatch
):
    import torch

    def save_half(state, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise full_disk()

    monkeypatch.setattr(torch, "save", save_half)
    err = one_line_error(capsys, ["train", *ONE_EPOCH, f"output_root={tmp_path}"])
    assert re.search(rf"checkpoints/last.pt: {NO_SPACE} \(free some space", err), err
    assert temporaries(tmp_path) == []
    assert not list(tmp_path.rglob("*.pt"))
    (summary,) = tmp_path.rglob("summary.json")
    assert json.loads(summary.read_text())["status"] == "failed"


def test_a_full_disk_while_writing_metrics_is_one_line_and_no_half_row(
    tmp_path, capsys, monkeypatch
):
    real_write = os.write
    calls = {"metrics": 0}

    def full_after_header(fd, data):
        if fd_name(fd).endswith("metrics.csv"):
            calls["metrics"] += 1
            if calls["metrics"] > 1:
                real_write(fd, bytes(data[:5]))
                raise full_disk()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_after_header)
    err = one_line_error(capsys, ["train", *ONE_EPOCH, f"output_root={tmp_path}"])
    assert re.search(rf"metrics.csv: {NO_SPACE}", err), err
    (metrics,) = tmp_path.rglob("metrics.csv")
    assert metrics.read_bytes().count(b"\n") == 1 and metrics.read_bytes().endswith(b"\r\n")


def test_a_full_disk_at_the_first_summary_removes_the_new_run(tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if ".summary.json." in fd_name(fd):
            raise full_disk()
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    err = one_line_error(capsys, ["train", *ONE_EPOCH, f"output_root={tmp_path}"])
    assert re.search(rf"summary.json: {NO_SPACE}", err), err
    assert list(tmp_path.rglob("*")) == []  # the new run's folder was removed


def test_a_full_disk_as_hydra_writes_the_config_is_one_line(tmp_path, capsys, monkeypatch):
    import hydra.core.utils

    real_save = hydra.core.utils._save_config

    def save_config(cfg, filename, output_dir):
        if filename == "config.yaml":
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            Path(output_dir, filename).write_bytes(b"")  # what a full disk leaves
            raise OSError(errno.ENOSPC, NO_SPACE, str(Path(output_dir, filename)))
        return real_save(cfg, filename, output_dir)

    monkeypatch.setattr(hydra.core.utils, "_save_config", save_config)
    err = one_line_error(capsys, ["train", *ONE_EPOCH, f"output_root={tmp_path}"])
    assert re.search(rf"\.hydra/config.yaml: {NO_SPACE}", err), err
    assert list(tmp_path.rglob("*")) == []  # no folder with a 0-byte config.yaml is left


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EDQUOT, "Disk quota exceeded", "/runs/x/summary.json"),
        OSError(errno.EROFS, "Read-only file system", "/runs/x/summary.json"),
        PermissionError(errno.EACCES, "Permission denied", "/runs/x/summary.json"),
        OSError(errno.ENAMETOOLONG, "File name too long", "/runs/x/summary.json"),
    ],
    ids=["EDQUOT", "EROFS", "EACCES", "ENAMETOOLONG"],
)
def test_an_environment_error_is_one_line_naming_the_file(error):
    line, code = error_line(RuntimeError("wrapped"))
    assert code == 1  # a plain bug stays a bug
    try:
        try:
            raise error
        except OSError:
            raise RuntimeError("torch's wrapper") from None
    except RuntimeError as wrapped:
        wrapped.__context__ = error
        line, code = error_line(wrapped)
    assert code == 2 and line == f"imgcls: error: /runs/x/summary.json: {error.strerror}" + (
        " (free some space, then run again or continue with resume=)"
        if error.errno == errno.EDQUOT
        else ""
    )


# -- the run folder deleted or renamed during the run ----------------------------------------
@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_a_run_folder_gone_during_the_run_is_one_line(tmp_path, capsys, monkeypatch, how):
    from imgcls.train import engine

    real_write = engine.MetricsWriter.write

    def write_then_lose_folder(self, row):
        real_write(self, row)
        run = self.path.parent
        if how == "deleted":
            shutil.rmtree(run)
        else:
            run.rename(run.with_name(run.name + "_moved"))

    monkeypatch.setattr(engine.MetricsWriter, "write", write_then_lose_folder)
    err = one_line_error(capsys, ["train", *ONE_EPOCH, f"output_root={tmp_path}"])
    assert re.search(r"the folder .* disappeared while last.pt was being written", err), err
    assert temporaries(tmp_path) == []
    runs = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    if how == "deleted":
        assert runs == []  # never made again
    else:
        assert [p.name.endswith("_moved") for p in runs] == [True]


# -- out of memory -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        MemoryError("Unable to allocate 3.00 GiB for an array with shape (64, 3, 4096, 4096)"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
    ],
    ids=["MemoryError", "DefaultCPUAllocator"],
)
def test_out_of_memory_is_one_line_naming_the_keys(error):
    line, code = error_line(error)
    assert code == 2 and line.startswith("imgcls: error: out of memory (")
    assert "trainer.batch_size" in line and "dataset.image_size" in line
    assert "model.widths" in line


def test_torch_out_of_memory_error_is_one_line():
    import torch

    line, code = error_line(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert code == 2 and "out of memory (CUDA out of memory" in line and "\n" not in line


def test_synthetic_images_that_cannot_fit_are_refused_before_allocating(
    tmp_path, capsys, monkeypatch
):
    from imgcls.base import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)  # 1 MiB left
    err = one_line_error(
        capsys, ["train", *ONE_EPOCH, "dataset.image_size=64", f"output_root={tmp_path}"]
    )
    assert re.search(
        r"240 synthetic images of 1x64x64 need 8.4 MiB of memory but only 1.0 MiB is "
        r"available: lower dataset.num_samples or dataset.image_size$",
        err,
    ), err
    assert list(tmp_path.rglob("*")) == []


def test_the_available_memory_is_known_on_linux():
    from imgcls.base.memory import available_bytes

    available = available_bytes()
    assert available is not None and available > 0


def test_a_full_disk_under_train_log_prints_no_logging_traceback(tmp_path, capsys, monkeypatch):
    from imgcls.base.runs import RunDirectory, logger

    monkeypatch.setattr(logger, "propagate", False)  # only train.log's handler is under test
    run = RunDirectory(tmp_path)
    run.attach_log()
    try:
        logger.info("a first line")
        handler = run._log_handler

        def full(_text):
            raise full_disk()

        handler.stream.write = full
        logger.info("a line the disk has no room for")
        logger.info("and another")
        assert isinstance(handler.failure, OSError) and handler.failure.errno == errno.ENOSPC
    finally:
        run.detach_log()
    assert capsys.readouterr().err == ""  # logging would print "--- Logging error ---"
    assert (tmp_path / "train.log").read_text() == "a first line\n"


def test_a_failed_copy_of_best_pt_leaves_no_temporary(tmp_path, monkeypatch):
    from imgcls.base import checkpoint

    source = tmp_path / "last.pt"
    source.write_bytes(b"a checkpoint")

    def no_links(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def half_copy(_source, target):
        Path(target).write_bytes(b"a chec")
        raise full_disk(str(target))

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(checkpoint.shutil, "copyfile", half_copy)
    with pytest.raises(OSError, match=NO_SPACE):
        checkpoint.link_atomically(source, tmp_path / "best.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
