"""Data-parallel training: two gloo processes on the CPU, launched by torchrun; and the
one-line refusal of more processes than GPUs (CUDA simulated in-process).

NCCL on a real GPU is in tests/test_gpu.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env

from imgcls import cli
from imgcls.base import distributed
from imgcls.base.errors import UserError

# CPU processes (gloo) on any machine: trainer.device=cpu, and cli_env hides the GPUs.
# No dropout or augmentation: the 2-process run must follow the 1-process loss curve.
DDP_RUN = [
    *TINY,
    "trainer.device=cpu",
    "model.dropout=0.0",
    "augment=none",
    "trainer.epochs=3",
    "trainer.batch_size=24",
]


def train_losses(run_dir: Path) -> list[float]:
    return [float(r["train_loss"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("summary.json"))


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_and_writes_one_run(tmp_path, monkeypatch, capsys):
    # The one-process reference trains in this process (one torch thread, as each DDP rank
    # has): only the two ranks need programs of their own.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *DDP_RUN, "output_root=single"]) == 0, capsys.readouterr().err
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
    assert summary["status"] == "completed" and summary["device"] == "cpu"
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


# -- more processes than GPUs: one line and exit 2, before any process touches a GPU -------
TWO_PROCESSES = {
    "RANK": "0",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "0",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29599",
}
TOO_FEW_GPUS = (
    "trainer.strategy=ddp with 2 processes needs 2 GPUs; this machine has 1: "
    "use --nproc_per_node=1 or trainer.device=cpu"
)


@pytest.fixture
def one_gpu_machine(monkeypatch):
    """This process as rank 0 of two under torchrun, on a machine that reports one GPU.

    Joining a process group and choosing a GPU are recorded, not done: the checks must come
    first, and a CPU run must still join with gloo.
    """
    for key, value in TWO_PROCESSES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda backend: calls.append(("init", backend))
    )
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    yield calls
    del distributed._context[1:]  # what shutdown() does, without a real process group


def test_more_processes_than_gpus_is_one_line_and_exit_2(
    one_gpu_machine, tmp_path, monkeypatch, capsys
):
    from imgcls import cli

    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", *TINY, "trainer.device=auto", "trainer.strategy=ddp"])
    err = capsys.readouterr().err
    assert (code, err) == (2, f"imgcls: error: {TOO_FEW_GPUS}\n")
    assert one_gpu_machine == []  # neither a GPU chosen nor a process group joined
    assert list(tmp_path.iterdir()) == []  # and no run folder


def test_gpus_per_process_check_names_the_numbers(one_gpu_machine, monkeypatch):
    with pytest.raises(UserError) as error:
        distributed.initialize("cuda")
    assert str(error.value) == TOO_FEW_GPUS
    assert distributed.context() is distributed.SINGLE and one_gpu_machine == []
    rank1 = distributed.DistributedContext(rank=1, world_size=2, local_rank=1)
    with pytest.raises(UserError, match="with 2 processes needs 2 GPUs; this machine has 1"):
        distributed.require_gpu_per_process(rank1, gpus=1)
    distributed.require_gpu_per_process(rank1, gpus=2)  # one GPU each: fine
    two_nodes = distributed.DistributedContext(rank=2, world_size=4, local_rank=0)
    with pytest.raises(UserError, match="with 2 processes on this machine needs 2 GPUs"):
        distributed.require_gpu_per_process(two_nodes, gpus=1)
    with pytest.raises(UserError, match="this machine has 0: use trainer.device=cpu$"):
        distributed.require_gpu_per_process(rank1, gpus=0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    distributed.require_gpu_per_process(distributed.DistributedContext(joined=True), gpus=1)


def test_cpu_processes_join_with_gloo_whatever_the_gpus(one_gpu_machine):
    ctx = distributed.initialize("cpu")
    assert one_gpu_machine == [("init", "gloo")]  # no GPU check, no set_device
    assert (ctx.rank, ctx.world_size, ctx.enabled) == (0, 2, True)
    assert distributed.initialize("cpu") is ctx  # joined once


def test_one_process_under_torchrun_is_still_data_parallel(one_gpu_machine, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    ctx = distributed.initialize("cuda")  # one process, one GPU: NCCL on cuda:0
    assert one_gpu_machine == [("set_device", 0), ("init", "nccl")]
    assert ctx.enabled and ctx.world_size == 1  # DDP wraps the model, as the user asked
