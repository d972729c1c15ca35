"""Exact resume: what a checkpoint holds beyond the weights, and how a run continues.

A checkpoint written in the middle of an epoch (on SIGINT/SIGTERM) carries
``epoch_progress``: the epoch, how many batches are done, the running sums of the epoch's
metrics and the loader generator's state at the start of the epoch. Resuming sets the
generator back to that state, replays the epoch's data order and augmentation draws for
the batches already done (without training on them), then restores every RNG state saved at
the interruption. The continued run therefore sees the same batches, the same augmentations
and the same dropout masks as a run that was never interrupted.

``imgcls train resume=<run dir>`` continues in that folder; ``resume=auto`` picks the newest
unfinished run under ``output_root`` whose config equals the composed one.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from imgcls.errors import UserError
from imgcls.runs import atomic_write
from imgcls.train.checkpoint import load_checkpoint, restore_rng

if TYPE_CHECKING:
    from imgcls.data.loader import DeviceLoader
    from imgcls.train.engine import Engine
    from imgcls.train.job import RunResult

logger = logging.getLogger("imgcls")

UNFINISHED = ("interrupted", "running")


# -- inside one epoch ----------------------------------------------------------------------
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
        from imgcls import distributed

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


def accumulation_weights(loader: DeviceLoader, steps: int, k: int) -> list[float] | None:
    """Per-batch loss weights so that k accumulated batches equal one batch of their union.

    Batch i is weighted by its size over the size of its accumulation group (the last
    group may be smaller), so the summed gradient is the gradient of the group's mean loss.
    """
    if k == 1:
        return None
    n, size = len(loader.data), loader.batch_size
    sizes = [min(size, n - i * size) for i in range(steps)]
    weights = []
    for i, batch in enumerate(sizes):
        group = i // k
        weights.append(batch / sum(sizes[group * k : (group + 1) * k]))
    return weights


def update_top_k(
    top_k: list[tuple[float, int]], value: float, epoch: int, k: int, mode: str
) -> tuple[list[tuple[float, int]], list[int]]:
    """The k best (value, epoch) pairs after adding this epoch, and the epochs that fell out."""
    if not math.isfinite(value):
        return list(top_k), []
    ranked = sorted(
        [*map(tuple, top_k), (value, epoch)],
        key=lambda item: (-item[0] if mode == "max" else item[0], item[1]),
    )
    keep = [(float(v), int(e)) for v, e in ranked[:k]]
    dropped = [int(e) for _, e in ranked[k:]]
    return keep, dropped


# -- loading a checkpoint into an engine ---------------------------------------------------
def load_states(engine: Engine, state: dict[str, Any]) -> None:
    """Load every training state of ``state``; a checkpoint that does not fit is a UserError."""
    where = engine.run.checkpoint("last")
    try:
        engine.model.load_state_dict(state["model"])
        engine.optimizer.load_state_dict(state["optimizer"])
        engine.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") is not None and engine.scaler.is_enabled():
            engine.scaler.load_state_dict(state["scaler"])
        if engine.ema is not None:
            if not state.get("ema"):
                raise ValueError("it has no EMA weights but trainer.ema.decay is set")
            engine.ema.load_state_dict(state["ema"])
        if engine.early_stopping is not None and state.get("early_stopping"):
            engine.early_stopping.load_state_dict(state["early_stopping"])
        best = state["best"]
        engine.best_epoch, engine.best_value = best["epoch"], best["value"]
        engine.best_metrics = dict(best.get("metrics") or {})
        engine.top_k = [(float(v), int(e)) for v, e in best.get("top_k") or []]
        engine.step = int(state["step"])
        engine.start_epoch = int(state["epoch"]) + 1
        rng = state["rng"]
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UserError(
            f"{where} does not fit this run's model and settings ({first}); "
            "it may come from another run"
        ) from error
    engine._resume = {"rng": rng, "partial": state.get("epoch_progress")}


def apply_rng(engine: Engine) -> None:
    """At the start of a resumed fit: every RNG as it was when the checkpoint was written."""
    if engine._resume is not None:
        restore_rng(engine._resume["rng"], engine.train_loader.generator)


def truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metrics.csv rows after the checkpoint's epoch (written just before a kill -9)."""
    if not path.exists():
        return
    rows = list(csv.reader(path.open(newline="")))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else 0
    kept = [r for r in body if r and int(r[column]) <= epochs_done]
    if len(kept) == len(body):
        return
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *kept])
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


# -- finding and continuing a run ----------------------------------------------------------
def saved_config(run_dir: Path) -> DictConfig:
    """The run's config from ``.hydra/config.yaml``, checked against the schema."""
    from imgcls.config import TrainConfig, register_configs

    register_configs()
    try:
        cfg = OmegaConf.merge(
            OmegaConf.structured(TrainConfig), OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        )
    except Exception as error:
        raise UserError(
            f"{run_dir / '.hydra' / 'config.yaml'} is not a valid imgcls config "
            f"({' '.join(str(error).split())[:200]})"
        ) from error
    cfg.resume = None
    return cfg


def check_run_dir(value: str | Path) -> Path:
    """A run directory that can be resumed, or a one-line UserError saying why not."""
    run_dir = Path(value)
    if not run_dir.is_dir():
        raise UserError(f"resume={value}: no such run directory")
    if (
        not (run_dir / ".hydra" / "config.yaml").is_file()
        or not (run_dir / "summary.json").is_file()
    ):
        raise UserError(
            f"resume={value} is not an imgcls run directory (it needs .hydra/config.yaml and "
            "summary.json, as written by imgcls train)"
        )
    summary = _summary(run_dir)
    status = summary.get("status")
    if status == "completed":
        raise UserError(f"resume={value}: that run has already completed")
    if status == "running" and _alive(summary.get("pid")):
        raise UserError(f"resume={value}: that run is still running (process {summary['pid']})")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise UserError(f"resume={value}: the run has no checkpoints/last.pt to continue from")
    return run_dir


def _summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir / 'summary.json'} is unreadable ({error})") from error
    return summary if isinstance(summary, dict) else {}


def comparable(config: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """A resolved plain config without the keys that say how a run is launched."""
    from imgcls.config import comparable_config

    return comparable_config(config)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_unfinished(cfg: DictConfig) -> Path | None:
    """The newest unfinished run under ``cfg.output_root`` with the same config, if any.

    Unfinished: ``summary.json`` says interrupted, or running while its process is gone
    (killed), and ``checkpoints/last.pt`` exists.
    """
    root = Path(str(cfg.output_root))
    if not root.is_dir():
        return None
    wanted = comparable(cfg)
    found: list[tuple[float, Path]] = []
    for summary_path in root.rglob("summary.json"):
        run_dir = summary_path.parent
        last = run_dir / "checkpoints" / "last.pt"
        config_path = run_dir / ".hydra" / "config.yaml"
        if not last.is_file() or not config_path.is_file():
            continue
        try:
            summary = json.loads(summary_path.read_text())
            status = summary.get("status")
            if status not in UNFINISHED or (status == "running" and _alive(summary.get("pid"))):
                continue
            if comparable(OmegaConf.load(config_path)) != wanted:
                continue
        except Exception:  # an unreadable neighbour is not ours to judge
            continue
        found.append((last.stat().st_mtime, run_dir))
    return max(found)[1] if found else None


def resolve(cfg: DictConfig) -> Path | None:
    """The run directory that ``cfg.resume`` names (checked), or None: start a new run."""
    value = str(cfg.resume)
    if value != "auto":
        return check_run_dir(value)
    found = find_unfinished(cfg)
    if found is None:
        logger.info(f"resume=auto: no unfinished run with this config under {cfg.output_root}")
        return None
    logger.info(f"resume=auto: continuing {found}")
    return check_run_dir(found)


def resume_run(run_dir: str | Path) -> RunResult:
    """Continue the run in ``run_dir`` from its last.pt, in the same folder."""
    import yaml

    from imgcls.train.job import train

    run_dir = check_run_dir(run_dir)
    cfg = saved_config(run_dir)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
    return train(cfg, run_dir, overrides or [], resume_state=state)
