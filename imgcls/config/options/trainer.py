"""The trainer's options (``trainer.*``, conf/trainer/default.yaml): how a run trains.

:class:`TrainerOptions` is the schema Hydra checks every ``trainer.*`` key and type against
while composing, holds the trainer's rules once (``__post_init__``), and is what the engine
reads (:class:`imgcls.train.engine.Engine`), together with a small runtime record of what only
the run knows (the precision resolved for its device, DDP, a terminal).

Choices are Enums whose member *names* are the spellings users type (``trainer.precision=32``,
``trainer.strategy=ddp``); ``.name`` is the string the rest of imgcls works with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List  # noqa: UP035  (OmegaConf 2.3 needs typing.List)

from imgcls.base.errors import OptionError
from imgcls.config.options.base import at_least, choice, require, show

# The spellings "32" and "16" cannot be Python names, so this Enum is made by the functional
# API: the names are what users type, and the values 32 and 16 let OmegaConf take the integers
# that ``trainer.precision=32`` parses to (it matches strings by name, integers by value).
Precision = Enum(
    "Precision",
    [("auto", "auto"), ("32", 32), ("bf16", "bf16"), ("16", 16)],
    module=__name__,
    qualname="Precision",
)
Precision.__doc__ = "``trainer.precision``: auto (bf16 on recent GPUs, else 32), 32, bf16, 16."


class Strategy(Enum):
    """``trainer.strategy``: ddp trains data-parallel over the processes torchrun starts."""

    auto = "auto"
    single = "single"
    ddp = "ddp"


class Monitor(str, Enum):
    """``trainer.monitor``: the validation metric that picks the best epoch.

    A ``str`` Enum, so that ``trainer.early_stopping.monitor: ${..monitor}`` (a
    :class:`StopMonitor`) can take its value by name. ``auto`` is ``val_map`` for
    multi-label data and ``val_accuracy`` otherwise (:func:`resolve_monitor`)."""

    auto = "auto"
    val_accuracy = "val_accuracy"
    val_loss = "val_loss"
    val_map = "val_map"
    val_balanced_accuracy = "val_balanced_accuracy"


class StopMonitor(Enum):
    """``trainer.early_stopping.monitor``: a validation or a training metric."""

    auto = "auto"
    val_accuracy = "val_accuracy"
    val_loss = "val_loss"
    val_map = "val_map"
    val_balanced_accuracy = "val_balanced_accuracy"
    train_loss = "train_loss"
    train_accuracy = "train_accuracy"


MULTILABEL_ONLY = ("val_map",)
SINGLE_LABEL_ONLY = ("val_balanced_accuracy",)


def resolve_monitor(name: str, task: str, key: str = "trainer.monitor") -> str:
    """The metric ``name`` stands for on data of ``task`` (``auto``: ``val_map`` for
    multi-label data, else ``val_accuracy``); a metric the task does not have is an
    :class:`OptionError` naming ``key``."""
    multilabel = task == "multilabel"
    if name == "auto":
        return "val_map" if multilabel else "val_accuracy"
    if multilabel and name in SINGLE_LABEL_ONLY:
        raise OptionError(
            f"{key}={name} is for one label per image, and this dataset gives several: "
            "use val_map, val_accuracy (all labels right) or val_loss"
        )
    if not multilabel and name in MULTILABEL_ONLY:
        raise OptionError(
            f"{key}={name} needs several labels per image, and this dataset gives one: "
            "use val_accuracy, val_balanced_accuracy or val_loss"
        )
    return name


class MonitorMode(Enum):
    """Whether the monitored metric improves upwards (max) or downwards (min)."""

    max = "max"
    min = "min"


class ClipMode(Enum):
    """``trainer.gradient_clip_mode``: clip the gradients' total norm, or each value."""

    norm = "norm"
    value = "value"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""torch.compile's modes; ``trainer.compile=true`` is ``default``."""

TTA_VIEWS = ("identity", "hflip", "down_right", "up_left", "hflip_down_right", "hflip_up_left")
"""The views ``trainer.test_tta`` may name (made by :data:`imgcls.train.tta.VIEWS`)."""


def _compile_mode(value: Any) -> str | None:
    """``trainer.compile`` as a torch.compile mode, None for eager (false/off), or raise
    :class:`OptionError` naming the valid values."""
    text = str(value).strip().lower()
    if value is False or text in ("false", "off", "none", "no", "0"):
        return None
    if value is True or text in ("true", "on", "yes", "1"):
        return "default"
    if text in COMPILE_MODES:
        return text
    valid = ", ".join(("false", "true", *COMPILE_MODES))
    raise OptionError(f"compile={show(value)} is invalid: use one of {valid}")


def _pending(value: Any) -> bool:
    """An interpolation such as ``${..monitor}`` left in an option made in Python."""
    return isinstance(value, str) and value.startswith("${")


@dataclass
class EmaOptions:
    """``trainer.ema``: validate and keep best.pt with exponentially averaged weights."""

    decay: float = 0.0  # 0 = off; e.g. 0.999

    def __post_init__(self) -> None:
        if not 0 <= self.decay < 1:
            raise OptionError(f"decay={self.decay} is invalid: use [0, 1), 0 = off")


@dataclass
class LookaheadOptions:
    """``trainer.lookahead``: slow weights the fast ones return to (imgcls.train.lookahead)."""

    every: int = 0  # 0 = off; else every k optimizer steps
    decay: float = 0.7737809375  # 0.95**5: the slow weights' decay at the end of the run
    power: float = 3.0  # decay at step t: decay * (t / total steps) ** power

    def __post_init__(self) -> None:
        require(self.every >= 0, "every", self.every, "use >= 0 (0 = off)")
        require(0 <= self.decay < 1, "decay", self.decay, "use [0, 1)")
        require(self.power >= 0, "power", self.power, "use >= 0")


@dataclass
class EarlyStoppingOptions:
    """``trainer.early_stopping``: stop after ``patience`` epochs without an improvement of
    more than ``min_delta`` in ``monitor`` (by default the trainer's own)."""

    patience: int = 0  # 0 = off
    monitor: StopMonitor = "${..monitor}"  # type: ignore[assignment]
    mode: MonitorMode = "${..monitor_mode}"  # type: ignore[assignment]
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not _pending(self.monitor):  # else the trainer's monitor, filled in by the trainer
            self.monitor = choice(StopMonitor, "monitor", self.monitor)
        if not _pending(self.mode):
            self.mode = choice(MonitorMode, "mode", self.mode)
        require(self.patience >= 0, "patience", self.patience, "use >= 0")
        require(self.min_delta >= 0, "min_delta", self.min_delta, "use >= 0")


@dataclass
class TrainerOptions:
    """``trainer.*``: how a run trains (epochs, batch, device, precision, clipping,
    accumulation, EMA, early stopping, checkpoints, DDP). Documented key by key in
    conf/trainer/default.yaml. ``fast_dev_run`` (one epoch of one training and one validation
    batch) is applied by :attr:`run_epochs`, :meth:`train_batches` and :attr:`val_batch_limit`."""

    epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int = 512
    device: str = "auto"
    precision: Precision = Precision["auto"]
    num_workers: int = 0
    log_every: int = 50
    monitor: Monitor = Monitor.auto
    monitor_mode: MonitorMode = MonitorMode.max
    channels_last: bool = False
    # false | true (= default) | default | reduce-overhead (CUDA graphs) | max-autotune
    compile: Any = False
    gradient_clip: float = 0.0  # 0 = off
    gradient_clip_mode: ClipMode = ClipMode.norm
    accumulate_batches: int = 1
    ema: EmaOptions = field(default_factory=EmaOptions)
    early_stopping: EarlyStoppingOptions = field(default_factory=EarlyStoppingOptions)
    save_top_k: int = 1
    fast_dev_run: bool = False
    limit_train_batches: int = 0  # 0 = all
    deterministic: bool = False
    strategy: Strategy = Strategy.auto
    lookahead: LookaheadOptions = field(default_factory=LookaheadOptions)
    plots: bool = True  # false: no plots/*.png; test_metrics.json and the report are written
    test_tta: List[str] = field(default_factory=list)  # noqa: UP006  (views: imgcls.train.tta)

    def __post_init__(self) -> None:
        self.precision = choice(Precision, "precision", self.precision)
        self.monitor = choice(Monitor, "monitor", self.monitor)
        self.monitor_mode = choice(MonitorMode, "monitor_mode", self.monitor_mode)
        self.gradient_clip_mode = choice(ClipMode, "gradient_clip_mode", self.gradient_clip_mode)
        self.strategy = choice(Strategy, "strategy", self.strategy)
        stopping = self.early_stopping
        if _pending(stopping.monitor):
            stopping.monitor = StopMonitor[self.monitor.name]
        if _pending(stopping.mode):
            stopping.mode = self.monitor_mode
        for key in (
            "epochs",
            "batch_size",
            "eval_batch_size",
            "log_every",
            "accumulate_batches",
            "save_top_k",
        ):
            at_least(key, getattr(self, key), 1)
        at_least("num_workers", self.num_workers, 0)
        _compile_mode(self.compile)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise OptionError(
                f"device='{self.device}' is invalid: use auto, cpu, cuda, cuda:N or mps"
            )
        require(self.gradient_clip >= 0, "gradient_clip", self.gradient_clip, "use >= 0")
        limit = self.limit_train_batches
        require(limit >= 0, "limit_train_batches", limit, "use >= 0 (0 = all)")
        for view in self.test_tta:
            require(
                view in TTA_VIEWS,
                "test_tta",
                list(self.test_tta),
                f"unknown view '{view}'; use {', '.join(TTA_VIEWS)}",
            )

    @property
    def compile_mode(self) -> str | None:
        """The torch.compile mode, or None to run eagerly."""
        return _compile_mode(self.compile)

    @property
    def run_epochs(self) -> int:
        """The epochs the run trains: ``epochs``, or 1 with ``fast_dev_run``."""
        return 1 if self.fast_dev_run else self.epochs

    @property
    def val_batch_limit(self) -> int:
        """Batches per validation (and the final test): 0 = all, 1 with ``fast_dev_run``."""
        return 1 if self.fast_dev_run else 0

    def train_batches(self, loader_length: int) -> int:
        """Batches per training epoch of a loader of ``loader_length`` batches, after
        ``limit_train_batches`` (1 with ``fast_dev_run``)."""
        limit = 1 if self.fast_dev_run else self.limit_train_batches
        return min(loader_length, limit) if limit > 0 else loader_length

    def optimizer_steps(self, loader_length: int) -> int:
        """Optimizer steps per epoch: one per ``accumulate_batches`` batches (and the rest)."""
        return -(-self.train_batches(loader_length) // self.accumulate_batches)
