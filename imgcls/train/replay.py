"""Mid-epoch replay: continuing an epoch that a signal interrupted, batch for batch.

A checkpoint written in the middle of an epoch (on SIGINT/SIGTERM) carries
``epoch_progress``: the epoch, how many batches are done, the running sums of the epoch's
metrics and the loader generator's state at the start of the epoch. Resuming sets the
generator back to that state, replays the epoch's data order and augmentation draws for
the batches already done (without training on them), then restores every RNG state saved at
the interruption. The continued run therefore sees the same batches, the same augmentations
and the same dropout masks as a run that was never interrupted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from imgcls.base import distributed
from imgcls.base.checkpoint import restore_rng
from imgcls.data.loader import DeviceLoader


@dataclass
class EpochSums:
    """The running sums of one training epoch (on the device), saved when it is interrupted."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    penalties: dict[str, torch.Tensor] = field(default_factory=dict)
    lr: float | None = None
    seconds: float = 0.0

    @classmethod
    def start(
        cls, device: torch.device, names: list[str], partial: dict[str, Any] | None
    ) -> EpochSums:
        if partial is None:
            return cls(
                loss_sum=torch.zeros((), device=device, dtype=torch.float64),
                correct=torch.zeros((), device=device, dtype=torch.int64),
                penalties={n: torch.zeros((), device=device) for n in names},
            )
        return cls(
            loss_sum=partial["loss_sum"].to(device),
            correct=partial["correct"].to(device),
            seen=int(partial["seen"]),
            penalties={n: partial["penalties"][n].to(device) for n in names},
            lr=float(partial["lr"]),
            seconds=float(partial["seconds"]),
        )

    def reduce_across_processes(self) -> None:
        """Sum loss, hits and counts over the DDP processes (penalties are the same on each)."""
        seen = torch.tensor(float(self.seen), device=self.loss_sum.device, dtype=torch.float64)
        for tensor in (self.loss_sum, self.correct, seen):
            distributed.all_reduce_sum(tensor)
        self.seen = int(seen.item())

    def state_dict(self, epoch: int, batches: int, loader_start: Any) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "batches": batches,
            "loader_start": loader_start,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "penalties": dict(self.penalties),
            "lr": self.lr,
            "seconds": self.seconds,
        }


def take_partial(resume_state: dict[str, Any] | None, epoch: int) -> dict[str, Any] | None:
    """The saved progress of ``epoch`` if the run is resuming in the middle of it."""
    if resume_state is None:
        return None
    partial = resume_state.get("partial")
    if partial is not None and int(partial["epoch"]) == epoch:
        return partial
    return None


def generator_state(loader: DeviceLoader) -> torch.Tensor | None:
    return loader.generator.get_state() if loader.generator is not None else None


def epoch_batches(
    loader: DeviceLoader,
    steps: int,
    partial: dict[str, Any] | None,
    resume_state: dict[str, Any] | None,
) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """``(index, batch)`` for the epoch's first ``steps`` batches, skipping those already done.

    Skipped batches are still drawn (order and augmentation), so the generator moves exactly
    as it did; then all RNG states of the interruption are restored.
    """
    if partial is None:
        yield from enumerate(itertools.islice(loader, steps))
        return
    if loader.generator is not None and partial["loader_start"] is not None:
        loader.generator.set_state(partial["loader_start"])
    batches = iter(itertools.islice(loader, steps))
    done = int(partial["batches"])
    for _ in range(done):
        next(batches)
    assert resume_state is not None
    restore_rng(resume_state["rng"], loader.generator)
    resume_state["partial"] = None
    yield from enumerate(batches, start=done)
