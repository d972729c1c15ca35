"""Options of the learning-rate schedules (``conf/scheduler/``); built by
:mod:`imgcls.train.schedulers`. Every schedule takes a linear warmup first."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List  # noqa: UP035  (OmegaConf 2.3 needs typing.List)

from imgcls.config.options.base import Options, at_least, choice, positive, require, schema


@dataclass
class ScheduleOptions(Options):
    """The warmup every schedule shares: ``warmup_epochs`` of linear ramp from
    ``warmup_start_factor`` times the rate (a warmup as long as the run is cut to half of it)."""

    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1

    def __post_init__(self) -> None:
        at_least("warmup_epochs", self.warmup_epochs, 0)
        require(
            0 <= self.warmup_start_factor <= 1,
            "warmup_start_factor",
            self.warmup_start_factor,
            "use [0, 1]",
        )


@schema("scheduler", "constant")
@dataclass
class ConstantOptions(ScheduleOptions):
    """The rate stays at optimizer.lr."""


@schema("scheduler", "step")
@dataclass
class StepOptions(ScheduleOptions):
    """lr0 * gamma^floor(t / step_size)."""

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("step_size", self.step_size, 1)
        positive("gamma", self.gamma)


@schema("scheduler", "multistep")
@dataclass
class MultiStepOptions(ScheduleOptions):
    """lr0 * gamma^(number of milestones <= t)."""

    milestones: List[int] = field(default_factory=lambda: [30, 60])  # noqa: UP006
    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("gamma", self.gamma)
        require(all(m >= 0 for m in self.milestones), "milestones", self.milestones, "use >= 0")


@dataclass
class FloorOptions(ScheduleOptions):
    """Schedules that decay towards ``lr_min`` (at most ``optimizer.lr``: checked with the
    optimizer in :mod:`imgcls.app.validation`)."""

    lr_min: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("lr_min", self.lr_min, 0)


@schema("scheduler", "cosine")
@dataclass
class CosineOptions(FloorOptions):
    """Cosine annealing from lr0 to lr_min."""


@schema("scheduler", "exponential")
@dataclass
class ExponentialOptions(ScheduleOptions):
    """lr0 * gamma^t."""

    gamma: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.gamma <= 1, "gamma", self.gamma, "it must be in (0, 1]")


class Anneal(str, Enum):
    """How one cycle ramps up and down."""

    cos = "cos"
    linear = "linear"


@schema("scheduler", "onecycle")
@dataclass
class OneCycleOptions(ScheduleOptions):
    """Up from lr0/div_factor to lr0 over pct_start, then down to lr0/(div*final_div)."""

    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: Anneal = Anneal.cos

    def __post_init__(self) -> None:
        super().__post_init__()
        self.anneal = choice(Anneal, "anneal", self.anneal)
        require(0 < self.pct_start < 1, "pct_start", self.pct_start, "use (0, 1)")
        at_least("div_factor", self.div_factor, 1)
        at_least("final_div_factor", self.final_div_factor, 1)


@schema("scheduler", "plateau")
@dataclass
class PlateauOptions(FloorOptions):
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement."""

    factor: float = 0.1
    patience: int = 5
    threshold: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.factor < 1, "factor", self.factor, "use (0, 1)")
        at_least("patience", self.patience, 0)
