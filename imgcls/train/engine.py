"""The training loop: train, validate, checkpoint, once per epoch.

The engine receives built objects and plain values, never the raw config. It keeps every
running sum on the device and synchronises with the host once per epoch (and every
``log_every`` steps when logging to a file), so it costs little over a bare PyTorch loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imgcls.data.loader import DeviceLoader
from imgcls.errors import NonFiniteLossError
from imgcls.progress import EpochProgress
from imgcls.runs import MetricsWriter, RunDirectory
from imgcls.train.checkpoint import BackgroundCheckpointer, rng_state
from imgcls.train.devices import autocast
from imgcls.train.regularizers import Regularizer

logger = logging.getLogger("imgcls")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EngineSettings:
    epochs: int
    precision: str = "32"
    log_every: int = 50
    monitor: str = "val_accuracy"
    monitor_mode: str = "max"
    show_progress: bool = False


@dataclass
class FitResult:
    best_epoch: int | None = None
    best_value: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    epochs_completed: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@torch.inference_mode()
def evaluate(
    model: nn.Module, loader: DeviceLoader, precision: str = "32", topk: int = 5
) -> dict[str, float]:
    """Cross-entropy loss, accuracy and top-k accuracy (when there are more than k classes)."""
    model.eval()
    device = loader.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    correct_k = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    num_classes = None
    for images, labels in loader:
        with autocast(precision, device):
            logits = model(images)
        logits = logits.float()
        num_classes = logits.shape[1]
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
        if num_classes > topk:
            top = logits.topk(topk, dim=1).indices
            correct_k += (top == labels[:, None]).any(dim=1).sum()
        count += labels.shape[0]
    metrics = {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}
    if num_classes is not None and num_classes > topk:
        metrics[f"top{topk}_accuracy"] = float(correct_k) / count
    return metrics


class Engine:
    """Fits a model and leaves metrics.csv and the checkpoints in the run directory."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        train_loader: DeviceLoader,
        val_loader: DeviceLoader,
        run: RunDirectory,
        settings: EngineSettings,
        *,
        label_smoothing: float = 0.0,
        regularizers: Sequence[Regularizer] = (),
        checkpoint_extra: dict[str, Any] | None = None,
        on_epoch_end: Sequence[Callable[[dict[str, Any]], None]] = (),
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.run = run
        self.settings = settings
        self.label_smoothing = label_smoothing
        self.penalties = [r for r in regularizers if type(r).penalty is not Regularizer.penalty]
        self.checkpoint_extra = checkpoint_extra or {}
        self.on_epoch_end = list(on_epoch_end)  # e.g. trackers: each gets the metrics row
        self.device = train_loader.device
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=settings.precision == "16")
        self.step = 0
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.checkpointer = BackgroundCheckpointer()

    # -- one epoch -------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self.train_loader.set_epoch(epoch)
        device, settings = self.device, self.settings
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        penalty_sums = {r.name: torch.zeros((), device=device) for r in self.penalties}
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        lr = float(self.optimizer.param_groups[0]["lr"])
        steps = len(self.train_loader)
        started = time.perf_counter()
        with EpochProgress(f"epoch {epoch}", steps, settings.show_progress) as bar:
            for index, (images, labels) in enumerate(self.train_loader, start=1):
                with autocast(settings.precision, device):
                    logits = self.model(images)
                    loss = nn.functional.cross_entropy(
                        logits.float(), labels, label_smoothing=self.label_smoothing
                    )
                total = loss
                for regularizer in self.penalties:
                    term = regularizer.penalty(self.model)
                    penalty_sums[regularizer.name] += term.detach()
                    total = total + term
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(total).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                batch = labels.shape[0]
                seen += batch
                loss_sum += loss.detach() * batch
                hard = labels.argmax(1) if labels.ndim == 2 else labels  # MixUp/CutMix targets
                correct += (logits.detach().argmax(1) == hard).sum()
                bar.advance()
                if not settings.show_progress and index % settings.log_every == 0 and index < steps:
                    running = float(loss_sum) / seen
                    self._check_finite(running, epoch)
                    logger.info(f"epoch {epoch} step {index}/{steps} loss {running:.4f}")
        train_loss = float(loss_sum) / seen  # the epoch's one host synchronisation
        seconds = time.perf_counter() - started
        self._check_finite(train_loss, epoch)
        metrics = {
            "lr": lr,
            "train_loss": train_loss,
            "train_accuracy": float(correct) / seen,
            "epoch_seconds": seconds,
            "images_per_second": seen / seconds if seconds > 0 else float("nan"),
        }
        for name, value in penalty_sums.items():
            metrics[f"{name}_loss"] = float(value) / steps
        return metrics

    def _check_finite(self, value: float, epoch: int) -> None:
        if math.isfinite(value):
            return
        self.checkpointer.wait()  # the previous epoch's checkpoint is the last good one
        last = self.run.checkpoint("last")
        kept = (
            f"the last good checkpoint is {last}"
            if last.exists()
            else "no checkpoint was saved yet"
        )
        raise NonFiniteLossError(
            f"training stopped: the loss became {value} in epoch {epoch}; {kept} "
            "(try a lower optimizer.lr or gradient clipping)"
        )

    # -- the whole fit ---------------------------------------------------------------------
    def fit(self) -> FitResult:
        result = FitResult()
        try:
            self._fit_epochs(result)
        finally:
            self.checkpointer.close()  # every checkpoint is on disk before fit returns or raises
        result.best_epoch, result.best_value = self.best_epoch, self.best_value
        result.steps = self.step
        return result

    def _fit_epochs(self, result: FitResult) -> None:
        settings = self.settings
        columns = [
            "epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
        ]  # fmt: skip
        writer: MetricsWriter | None = None
        for epoch in range(1, settings.epochs + 1):
            train_metrics = self.train_epoch(epoch)
            val = evaluate(self.model, self.val_loader, settings.precision)
            row: dict[str, Any] = {"epoch": epoch, "step": self.step, **train_metrics}
            row.update({f"val_{k}": v for k, v in val.items()})
            if writer is None:
                extra = [
                    k
                    for k in row
                    if k not in columns and k not in ("epoch_seconds", "images_per_second")
                ]
                writer = MetricsWriter(
                    self.run.metrics_path, [*columns, *extra, "epoch_seconds", "images_per_second"]
                )
            writer.write(row)
            result.history.append(row)
            for callback in self.on_epoch_end:
                callback(row)
            improved = self._is_better(row[settings.monitor])
            if improved:
                self.best_value, self.best_epoch = row[settings.monitor], epoch
                result.best_metrics = {k: row[k] for k in row if k.startswith("val_")}
            self._save(epoch, improved)
            logger.info(self._epoch_line(row, improved))
            result.epochs_completed = epoch
            result.train_seconds += train_metrics["epoch_seconds"]

    def _is_better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.settings.monitor_mode == "max":
            return value > self.best_value
        return value < self.best_value

    def _save(self, epoch: int, improved: bool) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "ema": None,
            "epoch": epoch,
            "step": self.step,
            "rng": rng_state(self.train_loader.generator),
            "best": {
                "epoch": self.best_epoch,
                "metric": self.settings.monitor,
                "value": self.best_value,
            },
            **self.checkpoint_extra,
        }
        best = self.run.checkpoint("best") if improved else None
        self.checkpointer.submit(self.run.checkpoint("last"), state, also=best)

    def _epoch_line(self, row: dict[str, Any], improved: bool) -> str:
        mark = " *" if improved else ""
        return (
            f"epoch {row['epoch']}/{self.settings.epochs}  lr {row['lr']:.4g}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}  "
            f"{row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s{mark}"
        )
