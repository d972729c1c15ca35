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

import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from imgcls.base.errors import UserError, unknown_choice
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


def schedule(name: str):
    """Register ``make(lr0, T, **options) -> f(t)`` as a scheduler with warmup options.

    The registered builder's signature lists the schedule's own options plus
    ``warmup_epochs`` and ``warmup_start_factor``, so unknown keys are still caught.
    """

    def decorator(make: Callable[..., Factor | tuple[Factor, Plateau]]):
        own = [p for p in inspect.signature(make).parameters.values() if p.name not in ("lr0", "T")]

        @functools.wraps(make)
        def build(
            optimizer: torch.optim.Optimizer,
            steps_per_epoch: int,
            epochs: int,
            warmup_epochs: float = 0.0,
            warmup_start_factor: float = 0.1,
            monitor_mode: str = "max",
            **options: Any,
        ) -> EpochSchedule:
            if warmup_epochs < 0:
                raise UserError(
                    f"scheduler.warmup_epochs={warmup_epochs} is invalid: use a value >= 0"
                )
            warmup_epochs = fit_warmup(warmup_epochs, epochs)
            if not 0 <= warmup_start_factor <= 1:
                raise UserError(
                    f"scheduler.warmup_start_factor={warmup_start_factor} is invalid: use [0, 1]"
                )
            extra = {"monitor_mode": monitor_mode} if "monitor_mode" in _names(own) else {}
            made = make(_base_lr(optimizer), epochs - warmup_epochs, **options, **extra)
            factor, plateau = made if isinstance(made, tuple) else (made, None)
            return EpochSchedule(
                optimizer, steps_per_epoch, factor, warmup_epochs, warmup_start_factor, plateau
            )

        head = [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=a)
            for n, a in (("optimizer", Any), ("steps_per_epoch", int), ("epochs", int))
        ]
        warmup = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=float)
            for n, d in (("warmup_epochs", 0.0), ("warmup_start_factor", 0.1))
        ]
        keyword_own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        if "monitor_mode" not in _names(own):
            keyword_own.append(
                inspect.Parameter(
                    "monitor_mode", inspect.Parameter.KEYWORD_ONLY, default="max", annotation=str
                )
            )
        build.__signature__ = inspect.Signature([*head, *keyword_own, *warmup])
        hints = {p.name: p.annotation for p in [*keyword_own, *warmup]}
        build.__annotations__ = {k: v for k, v in hints.items() if not isinstance(v, str)}
        SCHEDULERS.register(name)(build)
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


def _names(params: Sequence[inspect.Parameter]) -> set[str]:
    return {p.name for p in params}


@schedule("constant")
def constant(lr0: float, T: float) -> Factor:
    return lambda t: 1.0


@schedule("step")
def step(lr0: float, T: float, step_size: int = 10, gamma: float = 0.1) -> Factor:
    if step_size < 1:
        raise UserError(f"scheduler.step_size={step_size} is invalid: it must be at least 1")
    if not gamma > 0:
        raise UserError(f"scheduler.gamma={gamma} is invalid: it must be positive")
    return lambda t: gamma ** math.floor(t / step_size + 1e-9)


@schedule("multistep")
def multistep(lr0: float, T: float, milestones: Sequence[int] = (30, 60), gamma: float = 0.1):
    if not gamma > 0:
        raise UserError(f"scheduler.gamma={gamma} is invalid: it must be positive")
    marks = sorted(milestones)
    if any(m < 0 for m in marks):
        raise UserError(f"scheduler.milestones={list(milestones)} is invalid: use epochs >= 0")
    return lambda t: gamma ** sum(1 for m in marks if t + 1e-9 >= m)


@schedule("cosine")
def cosine(lr0: float, T: float, lr_min: float = 0.0) -> Factor:
    if not 0 <= lr_min <= lr0:
        raise UserError(
            f"scheduler.lr_min={lr_min} is invalid: it must be in [0, optimizer.lr={lr0}]"
        )

    def factor(t: float) -> float:
        progress = min(t / T, 1.0)
        return (lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * progress))) / lr0

    return factor


@schedule("exponential")
def exponential(lr0: float, T: float, gamma: float = 0.9) -> Factor:
    if not 0 < gamma <= 1:
        raise UserError(f"scheduler.gamma={gamma} is invalid: it must be in (0, 1]")
    return lambda t: gamma**t


@schedule("onecycle")
def onecycle(
    lr0: float,
    T: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
) -> Factor:
    if not 0 < pct_start < 1:
        raise UserError(f"scheduler.pct_start={pct_start} is invalid: use (0, 1)")
    if div_factor < 1 or final_div_factor < 1:
        raise UserError("scheduler.div_factor and scheduler.final_div_factor must be >= 1")
    if anneal not in ("cos", "linear"):
        raise unknown_choice("scheduler.anneal", anneal, ["cos", "linear"])
    start, end = 1 / div_factor, 1 / (div_factor * final_div_factor)

    def ramp(x: float) -> float:  # 0 -> 1 over x in [0, 1]
        return x if anneal == "linear" else (1 - math.cos(math.pi * x)) / 2

    def factor(t: float) -> float:
        p = min(t / T, 1.0)
        if p < pct_start:
            return start + (1 - start) * ramp(p / pct_start)
        q = (p - pct_start) / (1 - pct_start)
        return end + (1 - end) * (1 - ramp(q))

    return factor


@schedule("plateau")
def plateau(
    lr0: float,
    T: float,
    factor: float = 0.1,
    patience: int = 5,
    threshold: float = 1e-4,
    lr_min: float = 0.0,
    monitor_mode: str = "max",
) -> tuple[Factor, Plateau]:
    if not 0 < factor < 1:
        raise UserError(f"scheduler.factor={factor} is invalid: use (0, 1)")
    if patience < 0:
        raise UserError(f"scheduler.patience={patience} is invalid: it must be >= 0")
    if not 0 <= lr_min <= lr0:
        raise UserError(f"scheduler.lr_min={lr_min} is invalid: use [0, optimizer.lr={lr0}]")
    tracker = Plateau(str(monitor_mode), factor, patience, threshold, lr_min / lr0)
    return (lambda t: 1.0), tracker
