"""Data-parallel training across processes (PyTorch DDP launched by torchrun).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
with ``trainer.strategy=ddp`` every process joins one process group (NCCL on CUDA, gloo on
CPU), all agree on the run directory that rank 0 chose, and only rank 0 writes to it. On CUDA
local rank i trains on cuda:i, so a machine needs a GPU per process it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from imgcls.base.errors import UserError

STRATEGIES = ("auto", "single", "ddp")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a DDP group (rank 0 of 1 without one): who writes, who waits."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined: bool = False  # this process joined torchrun's process group

    @property
    def enabled(self) -> bool:
        """Data-parallel training: a process group was joined, even a group of one process
        (``torchrun --nproc_per_node=1 ... trainer.strategy=ddp`` trains through DDP too)."""
        return self.joined

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and reports."""
        return self.rank == 0


SINGLE = DistributedContext()
_context: list[DistributedContext] = [SINGLE]


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def context() -> DistributedContext:
    """The context of this process: single unless :func:`initialize` joined a group."""
    return _context[-1]


def initialize(device_type: str) -> DistributedContext:
    """Join the process group torchrun prepared (idempotent); NCCL on CUDA, gloo otherwise.

    On CUDA, more processes on this machine than it has GPUs is a :class:`UserError` that
    names both numbers, raised before any process touches a GPU.
    """
    import torch
    import torch.distributed as dist

    if not launched_by_torchrun():
        return SINGLE
    if context().enabled:
        return context()
    ctx = DistributedContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        joined=True,
    )
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            require_gpu_per_process(ctx, torch.cuda.device_count())
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=backend)
    _context.append(ctx)
    return ctx


def require_gpu_per_process(ctx: DistributedContext, gpus: int) -> None:
    """Refuse, in one line, more processes on this machine than it has ``gpus``.

    torchrun starts ``--nproc_per_node`` processes (LOCAL_WORLD_SIZE) and local rank i would
    take cuda:i: a missing GPU would otherwise end in a traceback from ``set_device``.
    """
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", 0)), ctx.local_rank + 1)
    if local <= gpus:
        return
    where = "" if local == ctx.world_size else " on this machine"
    fix = f"--nproc_per_node={gpus} or trainer.device=cpu" if gpus else "trainer.device=cpu"
    raise UserError(
        f"trainer.strategy=ddp with {local} processes{where} needs {local} GPUs; "
        f"this machine has {gpus}: use {fix}"
    )


def setup(strategy: str, device_type: str) -> DistributedContext:
    """The context a run trains in: joins the process group for ``trainer.strategy=ddp``."""

    if strategy != "ddp":
        if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            raise UserError(
                "several processes were started (torchrun) but trainer.strategy is not ddp: "
                "add trainer.strategy=ddp"
            )
        return SINGLE
    if not launched_by_torchrun():
        raise UserError(
            "trainer.strategy=ddp needs several processes: launch with "
            "torchrun --nproc_per_node=N -m imgcls train trainer.strategy=ddp ..."
        )
    return initialize(device_type)


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object)."""
    import torch.distributed as dist

    if not context().enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(tensor):
    """Sum a tensor over all ranks in place (a no-op in a single process)."""
    import torch.distributed as dist

    if context().enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every process of the group (nothing to wait for without one)."""
    import torch.distributed as dist

    if context().enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, so that a later run in this process starts single again."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    del _context[1:]
