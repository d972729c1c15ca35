"""Learning-rate schedules, stepped every optimizer step so they are smooth.

Each schedule is a factor f(t) of the base rate lr0, t the training progress in epochs
(fractional within an epoch, 0-based), so the rate at every epoch boundary is exactly the
textbook formula. A linear warmup of ``warmup_epochs`` w comes first and the schedule's own
clock starts after it: for t < w the factor is s + (1 - s)·t/w (s = ``warmup_start_factor``),
afterwards f(t - w) with T = epochs - w as the schedule's length (a warmup as long as the
run is cut to half of it). ``plateau`` also scales the
rate down when the monitored metric stops improving (decided once per epoch).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch

from imgcls.config.options.schedulers import (
    Anneal,
    ConstantOptions,
    CosineOptions,
    ExponentialOptions,
    MultiStepOptions,
    OneCycleOptions,
    PlateauOptions,
    ScheduleOptions,
    StepOptions,
)
from imgcls.registry import SCHEDULERS

Factor = Callable[[float], float]
logger = logging.getLogger("imgcls")


class Plateau:
    """Reduce-on-plateau bookkeeping: ``scale`` drops by ``factor`` after ``patience`` bad epochs."""

    def __init__(
        self, mode: str, factor: float, patience: int, threshold: float, min_scale: float
    ) -> None:
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.min_scale = threshold, min_scale
        self.best: float | None = None
        self.bad_epochs = 0
        self.scale = 1.0

    def update(self, value: float) -> None:
        if not math.isfinite(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "max":
            improved = value > self.best + self.threshold
        else:
            improved = value < self.best - self.threshold
        if improved:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale = max(self.scale * self.factor, self.min_scale)
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs, self.scale = state["best"], state["bad_epochs"], state["scale"]


class EpochSchedule(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR over optimizer steps with t = step / steps_per_epoch, warmup and plateau.

    :meth:`epoch_end` receives the monitored metric after validation (used by ``plateau``).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        steps_per_epoch: int,
        factor: Factor,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.1,
        plateau: Plateau | None = None,
    ) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.warmup_epochs = warmup_epochs
        self.plateau = plateau
        self.epochs_seen = 0

        def lr_lambda(step: int) -> float:
            t = step / steps_per_epoch
            if t < warmup_epochs - 1e-12:
                return warmup_start_factor + (1 - warmup_start_factor) * t / warmup_epochs
            scale = self.plateau.scale if self.plateau is not None else 1.0
            return factor(t - warmup_epochs) * scale

        super().__init__(optimizer, lr_lambda)

    def epoch_end(self, value: float) -> None:
        """Feed the epoch's monitored metric; the plateau counts only after the warmup."""
        self.epochs_seen += 1
        if self.plateau is None or self.epochs_seen <= self.warmup_epochs:
            return
        before = self.plateau.scale
        self.plateau.update(value)
        if self.plateau.scale != before:  # apply the new scale from the next step on
            for group, base, lr_lambda in zip(
                self.optimizer.param_groups, self.base_lrs, self.lr_lambdas, strict=True
            ):
                group["lr"] = base * lr_lambda(self.last_epoch)
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            "_step_count": self._step_count,
            "epochs_seen": self.epochs_seen,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = state_dict["last_epoch"]
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["_last_lr"])
        self._step_count = state_dict["_step_count"]
        self.epochs_seen = state_dict["epochs_seen"]
        if self.plateau is not None and state_dict.get("plateau") is not None:
            self.plateau.load_state_dict(state_dict["plateau"])


def _base_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"]))


def schedule(name: str, options_class: type) -> Callable[[Callable[..., Any]], Any]:
    """Register ``make(options, lr0, T, monitor_mode) -> f(t)`` (or ``(f, Plateau)``) as the
    scheduler ``name``: the warmup comes first, and the schedule's own clock starts after it."""

    def decorator(make: Callable[..., Factor | tuple[Factor, Plateau]]):
        def build(
            options: ScheduleOptions,
            optimizer: torch.optim.Optimizer,
            steps_per_epoch: int,
            epochs: int,
            monitor_mode: str = "max",
        ) -> EpochSchedule:
            warmup_epochs = fit_warmup(options.warmup_epochs, epochs)
            made = make(options, _base_lr(optimizer), epochs - warmup_epochs, monitor_mode)
            factor, plateau = made if isinstance(made, tuple) else (made, None)
            return EpochSchedule(
                optimizer,
                steps_per_epoch,
                factor,
                warmup_epochs,
                options.warmup_start_factor,
                plateau,
            )

        build.__doc__ = make.__doc__
        SCHEDULERS.register(name, options_class)(build)
        return make

    return decorator


def fit_warmup(warmup_epochs: float, epochs: int) -> float:
    """The warmup a run of ``epochs`` can have: a warmup as long as the run, or longer, is cut
    to half the run, so that ``trainer.epochs=1`` works with a recipe's one-epoch warmup and
    the rate still decays after it."""
    if warmup_epochs < epochs:
        return warmup_epochs
    fitted = epochs / 2
    logger.info(
        f"scheduler.warmup_epochs={warmup_epochs:g} is not shorter than the {epochs}-epoch run: "
        f"warming up for {fitted:g} epochs instead"
    )
    return fitted


@schedule("constant", ConstantOptions)
def constant(options: ConstantOptions, lr0: float, T: float, mode: str) -> Factor:
    """The rate stays at lr0."""
    return lambda t: 1.0


@schedule("step", StepOptions)
def step(options: StepOptions, lr0: float, T: float, mode: str) -> Factor:
    """lr0 * gamma^floor(t / step_size)."""
    gamma, step_size = options.gamma, options.step_size
    return lambda t: gamma ** math.floor(t / step_size + 1e-9)


@schedule("multistep", MultiStepOptions)
def multistep(options: MultiStepOptions, lr0: float, T: float, mode: str) -> Factor:
    """lr0 * gamma^(number of milestones <= t)."""
    gamma, marks = options.gamma, sorted(options.milestones)
    return lambda t: gamma ** sum(1 for m in marks if t + 1e-9 >= m)


@schedule("cosine", CosineOptions)
def cosine(options: CosineOptions, lr0: float, T: float, mode: str) -> Factor:
    """lr_min + (lr0 - lr_min) * (1 + cos(pi * t / T)) / 2."""
    lr_min = options.lr_min

    def factor(t: float) -> float:
        progress = min(t / T, 1.0)
        return (lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * progress))) / lr0

    return factor


@schedule("exponential", ExponentialOptions)
def exponential(options: ExponentialOptions, lr0: float, T: float, mode: str) -> Factor:
    """lr0 * gamma^t."""
    gamma = options.gamma
    return lambda t: gamma**t


@schedule("onecycle", OneCycleOptions)
def onecycle(options: OneCycleOptions, lr0: float, T: float, mode: str) -> Factor:
    """Up from lr0/div_factor to lr0 over pct_start of the run, then down to
    lr0/(div_factor*final_div_factor); cosine or linear ramps."""
    pct_start, linear = options.pct_start, options.anneal is Anneal.linear
    start = 1 / options.div_factor
    end = 1 / (options.div_factor * options.final_div_factor)

    def ramp(x: float) -> float:  # 0 -> 1 over x in [0, 1]
        return x if linear else (1 - math.cos(math.pi * x)) / 2

    def factor(t: float) -> float:
        p = min(t / T, 1.0)
        if p < pct_start:
            return start + (1 - start) * ramp(p / pct_start)
        q = (p - pct_start) / (1 - pct_start)
        return end + (1 - end) * (1 - ramp(q))

    return factor


@schedule("plateau", PlateauOptions)
def plateau(options: PlateauOptions, lr0: float, T: float, mode: str) -> tuple[Factor, Plateau]:
    """A constant rate, scaled down by the plateau tracker when the monitor stalls."""
    tracker = Plateau(
        str(mode), options.factor, options.patience, options.threshold, options.lr_min / lr0
    )
    return (lambda t: 1.0), tracker
