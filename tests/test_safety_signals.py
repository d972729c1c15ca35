"""Signals at any moment: SIGINT, SIGTERM and SIGHUP leave nothing, or a run that resumes.

Real signals go to the real program (``python -m imgcls train``) at seeded random moments
of its start-up and training: after a random delay, or a random moment after a marker
appears (``.hydra/``, summary.json, checkpoints/last.pt). Each case asserts the exit code
(128 + the signal's number), one line on stderr without a traceback, and that the output
folder holds either nothing of the run or a run that ``resume=`` completes (in-process).
The process-identity check behind "is this run still running?" is tested in-process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ONE_EPOCH, TINY, cli_env

from imgcls import cli
from imgcls.base.processes import process_alive, process_identity, start_ticks
from imgcls.base.record import GONE_STATUS, Summary
from imgcls.base.signals import SignalReceived, signals_held, signals_raise
from imgcls.evaluate.leaderboard import collect_runs
from imgcls.train.signals import StopRequest

MARKERS = {  # a file whose appearance marks a moment of the run
    "hydra": ".hydra",
    "summary": "summary.json",
    "checkpoint": "last.pt",
}


def _found(root: Path, marker: str) -> bool:
    return root.is_dir() and any(root.rglob(MARKERS[marker]))


def signal_run(
    tmp_path: Path,
    signum: int,
    marker: str | None,
    seed: int,
    sweep: bool = False,
    extra: tuple[str, ...] = (),
):
    """Start ``imgcls train`` on a tiny run, send ``signum`` at a seeded random moment
    (after ``marker`` appears, or after a random delay since the start), wait for the end."""
    rng = random.Random(seed)
    root = tmp_path / "out"
    args = [sys.executable, "-m", "imgcls", "train", *(["-m", "seed=0,1"] if sweep else [])]
    args += [*TINY, *extra, f"output_root={root}"]
    with (tmp_path / "stdout.txt").open("w") as stdout:
        process = subprocess.Popen(
            args, cwd=tmp_path, stdout=stdout, stderr=subprocess.PIPE, text=True, env=cli_env()
        )
        deadline = time.monotonic() + 240
        if marker is None:
            time.sleep(rng.uniform(0.2, 3.0))  # imports, composition, claiming the folder
        else:
            while process.poll() is None and not _found(root, marker):
                assert time.monotonic() < deadline, f"{marker} never appeared"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=240)
    return process.returncode, stderr, root


def assert_one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert lines[0].startswith("imgcls: "), stderr
    return lines[0]


def run_folders(root: Path) -> list[Path]:
    """Every folder below ``root`` that holds any file a run writes."""
    if not root.is_dir():
        return []
    names = {".hydra", "summary.json", "metrics.csv", "train.log", "checkpoints", "multirun.yaml"}
    return sorted({p.parent for p in root.rglob("*") if p.name in names})


def assert_nothing_or_resumable(root: Path, capsys) -> None:
    """The output folder holds no trace of the run, or only runs that resume to the end."""
    left = run_folders(root)
    runs = [f for f in left if (f / "summary.json").is_file()]
    stray = [f for f in left if f not in runs and not (f / "multirun.yaml").is_file()]
    assert stray == [], f"half-made run folders: {stray}"
    if root.is_dir():  # no empty folder made by the run either, beyond output_root itself
        empty = [p for p in root.rglob("*") if p.is_dir() and not any(p.iterdir())]
        assert empty == [], empty
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        if summary["status"] == "completed":
            continue
        assert summary["status"] == "interrupted", summary
        assert (run / "checkpoints" / "last.pt").is_file()
        capsys.readouterr()
        assert cli.main(["train", f"resume={run}"]) == 0, capsys.readouterr().err
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"


# (signal, marker or None for a random delay since the start, seed, sweep): every stop signal
# in start-up (imports, .hydra/ written, summary written) and in training, and in a sweep.
# Each signal runs alone and in a sweep, each moment once at least: SIGHUP after .hydra/ of a
# single run is the sweep's case without the sweep, and SIGHUP after last.pt of a single run
# is test_sighup_in_training_stops_gracefully_and_the_run_resumes (which, with 40 epochs, is
# sure to hit training; the 2-epoch run here often finished first and was skipped).
CASES = [
    (signal.SIGTERM, None, 1, False),
    (signal.SIGINT, "hydra", 2, False),
    (signal.SIGTERM, "summary", 4, False),
    (signal.SIGINT, None, 6, True),
    (signal.SIGHUP, "hydra", 7, True),
    (signal.SIGTERM, "checkpoint", 8, True),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "marker", "seed", "sweep"),
    CASES,
    ids=[f"{s.name}-{m or 'delay'}{'-sweep' if w else ''}" for s, m, _, w in CASES],
)
def test_a_signal_at_a_random_moment_leaves_nothing_or_a_resumable_run(
    tmp_path, capsys, signum, marker, seed, sweep
):
    code, stderr, root = signal_run(tmp_path, signum, marker, seed, sweep)
    if code == 0:  # the run finished before the signal came: nothing to judge
        pytest.skip("the run completed before the signal")
    line = assert_one_line(stderr)
    assert code == 128 + signum, stderr
    assert signal.Signals(signum).name in line
    assert_nothing_or_resumable(root, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.6, 1.2])
def test_a_signal_while_torch_is_imported_is_one_line(tmp_path, delay):
    """Importing torch runs Python from C++ (pybind11), where an exception raised by a signal
    handler aborts the process ("terminate called after throwing ..."): the CLI holds the
    signals while it imports a command and acts on them after. (0.6 s and 1.2 s land in the
    import of torch; a third case at 0.2 s added no moment of its own and, on a busy machine,
    came before Python had started imgcls at all: killed by the default handler, exit -15.)"""
    root = tmp_path / "out"
    args = [sys.executable, "-m", "imgcls", "train", *ONE_EPOCH, f"output_root={root}"]
    process = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    if process.returncode == 0:
        pytest.skip("the run completed before the signal")
    assert process.returncode == 143, stderr
    assert "SIGTERM" in assert_one_line(stderr)
    assert run_folders(root) == []


def test_a_signal_while_a_command_is_imported_is_held_until_the_import_ends(monkeypatch, capsys):
    """The signal arrives in the middle of the import; the import still finishes (nothing
    is raised inside it), then the command stops with the start-up line."""
    finished: list[bool] = []

    def importing(name):
        os.kill(os.getpid(), signal.SIGTERM)
        finished.append(True)  # not reached if the handler raised inside the import
        return lambda args: 0

    monkeypatch.setattr(cli, "_command", importing)
    assert cli.main(["train"]) == 143
    assert finished == [True]
    line = assert_one_line(capsys.readouterr().err)
    assert line == "imgcls: interrupted by SIGTERM during start-up; nothing was kept"


def _swallowed_signal_then(error: Exception):
    """A command whose stop signal a library swallows half-way, then trips over the remains."""

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in here
        except SignalReceived:
            pass  # swallowed, as an import cut half-way leaves a half-made module
        raise error

    return lambda name: command


def test_an_error_after_a_stop_signal_is_the_signals_one_line(monkeypatch, capsys):
    """A signal that cut an import half-way (sympy, under torch._dynamo) made the code after
    it fail with AttributeError: the exit is the signal's, in one line, not an internal error."""
    error = AttributeError("module 'sympy' has no attribute 'logic'")
    monkeypatch.setattr(cli, "_command", _swallowed_signal_then(error))
    assert cli.main(["train"]) == 143
    assert assert_one_line(capsys.readouterr().err) == "imgcls: interrupted by SIGTERM"


def test_a_graceful_stop_keeps_its_own_line(monkeypatch, capsys):
    """Training's own stop (TrainingInterrupted, with where the state is) is not rewritten."""
    from imgcls.base.errors import TrainingInterrupted

    stop = TrainingInterrupted("SIGTERM received: stopped after epoch 1; continue with: ...")
    monkeypatch.setattr(cli, "_command", _swallowed_signal_then(stop))
    assert cli.main(["train"]) == 130
    assert "stopped after epoch 1" in assert_one_line(capsys.readouterr().err)


def test_a_signal_while_a_finished_run_writes_its_summary_leaves_it_completed(
    tmp_path, monkeypatch, capsys
):
    """A SIGTERM that arrives as a finished run writes summary.json (seen in a sweep under
    load: the run stayed "running") is held until the summary says "completed", then stops
    the command with the signal's exit code and one line."""
    from imgcls.base.runs import RunDirectory

    original = RunDirectory.write_summary

    def signalled_then_written(self, summary):
        if summary.status == "completed":
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode
        original(self, summary)

    monkeypatch.setattr(RunDirectory, "write_summary", signalled_then_written)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *TINY, *ONE_EPOCH, "output_root=out"]) == 143
    assert "SIGTERM" in assert_one_line(capsys.readouterr().err)
    (summary,) = (tmp_path / "out").rglob("summary.json")
    assert json.loads(summary.read_text())["status"] == "completed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_after_the_command_ended_leaves_the_exit_code_alone(signum):
    """A signal between the command's end and the process's exit (returning, finalizing the
    interpreter) finds the work done: the program exits with the command's code, silently,
    rather than being killed by Python's default handler (a completed run exiting -1)."""
    script = (
        "import os, sys\n"
        "from imgcls import cli\n"
        "sys.argv = ['imgcls', 'list', 'schedulers']\n"
        "code = cli.main()\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "cosine" in done.stdout and done.stderr == ""


@pytest.mark.slow
def test_sighup_in_training_stops_gracefully_and_the_run_resumes(tmp_path, capsys):
    many = ("trainer.epochs=40",)  # the signal comes while it trains
    code, stderr, root = signal_run(tmp_path, signal.SIGHUP, "checkpoint", seed=0, extra=many)
    line = assert_one_line(stderr)
    assert code == 129, stderr
    assert "SIGHUP received: stopped" in line and "resume=" in line
    (run,) = [f for f in run_folders(root) if (f / "summary.json").is_file()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["process"]["pid"] > 0
    assert_nothing_or_resumable(root, capsys)


# --- start-up windows, hit deterministically in-process --------------------------------------


def _raise_signal(signum: int):
    def stop(*args, **kwargs):
        raise SignalReceived(signum)

    return stop


@pytest.mark.parametrize(
    ("target", "signum"),
    [
        ("imgcls.app.job.build_training", signal.SIGTERM),  # loading data, building
        ("imgcls.app.job._log_start", signal.SIGHUP),  # summary.json written, not trained
        ("imgcls.train.engine.Engine.fit", signal.SIGINT),  # in run_status, no checkpoint
    ],
)
def test_a_signal_before_the_first_checkpoint_removes_the_run(
    tmp_path, capsys, monkeypatch, target, signum
):
    monkeypatch.setattr(target, _raise_signal(signum))
    root = tmp_path / "out"
    code = cli.main(["train", *ONE_EPOCH, f"output_root={root}"])
    err = capsys.readouterr().err
    line = assert_one_line(err)
    assert code == 128 + signum
    assert line == (
        f"imgcls: interrupted by {signal.Signals(signum).name} during start-up; nothing was kept"
    )
    assert run_folders(root) == []
    assert not root.exists() or not any(root.iterdir())


def test_a_signal_before_the_first_checkpoint_keeps_a_named_users_folder(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("imgcls.app.job._log_start", _raise_signal(signal.SIGTERM))
    folder = tmp_path / "mine"
    folder.mkdir()
    code = cli.main(["train", *ONE_EPOCH, f"hydra.run.dir={folder}"])
    assert code == 143, capsys.readouterr().err
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_signal_while_resuming_keeps_the_run_resumable(tmp_path, capsys, monkeypatch):
    run = interrupted_run(tmp_path, capsys)
    monkeypatch.setattr("imgcls.app.job.build_training", _raise_signal(signal.SIGTERM))
    code = cli.main(["train", f"resume={run}"])
    line = assert_one_line(capsys.readouterr().err)
    assert code == 143 and f"resume={run}" in line
    monkeypatch.undo()
    assert cli.main(["train", f"resume={run}"]) == 0


def interrupted_run(tmp_path: Path, capsys) -> Path:
    """A run stopped by SIGTERM in its second epoch (in this process), with its last.pt."""
    from imgcls.train.engine import Engine

    original = Engine.train_epoch

    def train_epoch(self, epoch):
        if epoch == 2:
            self.stop.signum = signal.SIGTERM  # as StopRequest's handler would
        return original(self, epoch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "train_epoch", train_epoch)
        root = tmp_path / "out"
        assert cli.main(["train", *TINY, "trainer.epochs=3", f"output_root={root}"]) == 143
    capsys.readouterr()
    (run,) = [p.parent for p in root.rglob("summary.json")]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    return run


def test_a_running_summary_whose_process_is_gone_reads_as_interrupted_and_resumes(tmp_path, capsys):
    run = interrupted_run(tmp_path, capsys)
    data = json.loads((run / "summary.json").read_text())
    data["status"] = "running"  # a kill -9 (or a SIGHUP before) left it so
    data["pid"], data["process"] = _dead_identity()
    (run / "summary.json").write_text(json.dumps(data))
    assert Summary.read(run / "summary.json").status == GONE_STATUS
    (listed,) = collect_runs([run])  # what report and the leaderboards show
    assert listed.status == GONE_STATUS
    assert cli.main(["train", f"resume={run}"]) == 0, capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_resume_refuses_a_run_whose_process_still_runs(tmp_path, capsys):
    run = interrupted_run(tmp_path, capsys)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        data = json.loads((run / "summary.json").read_text())
        data.update(status="running", pid=child.pid, process=_wait_identity(child.pid))
        (run / "summary.json").write_text(json.dumps(data))
        assert cli.main(["train", f"resume={run}"]) == 2
        line = assert_one_line(capsys.readouterr().err)
        assert f"still running (process {child.pid})" in line
    finally:
        child.kill()
        child.wait()
    assert Summary.read(run / "summary.json").status == GONE_STATUS  # gone now


# --- the process identity ------------------------------------------------------------------


def _wait_identity(pid: int) -> dict:
    for _ in range(200):  # /proc/<pid> appears with the process; give it a moment
        identity = process_identity(pid)
        if identity["start_ticks"] is not None or not Path("/proc").is_dir():
            return identity
        time.sleep(0.01)
    return process_identity(pid)


def _dead_identity() -> tuple[int, dict]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = _wait_identity(child.pid)
    child.wait()
    return child.pid, identity


def test_this_process_and_a_live_child_are_alive():
    assert process_alive(os.getpid(), process_identity())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(child.pid, _wait_identity(child.pid))
        assert process_alive(child.pid, None)  # an older summary: the pid alone
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, None)


def test_a_dead_pid_is_not_alive():
    pid, identity = _dead_identity()
    assert not process_alive(pid, identity)
    assert not process_alive(pid, {"pid": pid})
    for bad in (None, 0, -1, "12", True):
        assert not process_alive(bad, identity)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_reused_pid_or_a_reboot_is_not_the_process_that_wrote_the_run():
    me = process_identity()
    assert me["start_ticks"] == start_ticks(os.getpid()) and me["start_ticks"] is not None
    reused = {**me, "start_ticks": me["start_ticks"] - 1}  # same pid, started at another time
    assert not process_alive(os.getpid(), reused)
    if me["boot_id"] is not None:
        assert not process_alive(os.getpid(), {**me, "boot_id": "another-boot"})
    # on another host nothing can be checked from here: it is trusted to run
    assert process_alive(os.getpid(), {**reused, "host": "elsewhere.invalid"})


def test_summaries_without_a_process_identity_still_read(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"status": "running", "pid": os.getpid(), "model": "x"}))
    # an older summary naming this very pid is not this process's run (a restarted container)
    assert Summary.read(path).status == GONE_STATUS
    path.write_text(json.dumps({"status": "completed", "pid": 7, "process": "garbage"}))
    summary = Summary.read(path)
    assert summary.status == "completed" and summary.process is None
    path.write_text(json.dumps({"status": "running", "process": process_identity()}))
    assert Summary.read(path).status == GONE_STATUS  # no pid: nothing to check


def test_a_live_running_summary_stays_running(tmp_path):
    path = tmp_path / "summary.json"
    Summary(status="running", pid=os.getpid(), process=process_identity()).write(path)
    assert Summary.read(path).status == "running"


# --- the handlers ------------------------------------------------------------------------


def test_sighup_in_training_is_a_stop_request_like_sigterm():
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGHUP)
        assert stop.requested and stop.name == "SIGHUP" and stop.exit_code == 129
    with StopRequest() as stop, pytest.raises(SignalReceived):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C does not wait


def test_a_signal_while_held_is_raised_after_the_block():
    done = []
    with signals_raise(), pytest.raises(SignalReceived) as raised, signals_held():
        signal.raise_signal(signal.SIGTERM)
        done.append(True)  # the block is never cut half-way
    assert done == [True] and raised.value.exit_code == 143
    assert str(raised.value) == "interrupted by SIGTERM"


# A requeued job whose summary says running on another host (SLURM requeues a job killed with
# its node onto another node) continues its own folder: the second half of
# tests/test_sweeps.py::test_a_requeued_job_continues_from_its_own_last_checkpoint, which
# shares its sweep with the preempted-job case.
