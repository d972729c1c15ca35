"""The config schemas: typed dataclasses Hydra checks every composed key against.

They are stored in Hydra's ConfigStore (:func:`imgcls.config.compose.register_configs`), so
``trainer.epochs=abc`` fails while composing, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing.List)

from omegaconf import MISSING

PRECISIONS = ("auto", "32", "bf16", "16")


class MonitorMode(Enum):
    max = "max"
    min = "min"


class ClipMode(Enum):
    norm = "norm"
    value = "value"


@dataclass
class EmaConfig:
    decay: float = 0.0  # 0 = off; e.g. 0.999


@dataclass
class LookaheadConfig:  # issue 14 (airbench): imgcls.train.lookahead
    every: int = 0  # 0 = off; else every k optimizer steps
    decay: float = 0.7737809375  # 0.95**5: the slow weights' decay at the end of the run
    power: float = 3.0  # decay at step t: decay * (t / total steps) ** power


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # 0 = off
    monitor: str = "${..monitor}"
    mode: MonitorMode = "${..monitor_mode}"  # type: ignore[assignment]
    min_delta: float = 0.0


@dataclass
class TrainerConfig:
    """``trainer.*``: how a run trains (epochs, batch, device, precision, clipping,
    accumulation, EMA, early stopping, checkpoints, DDP). Documented key by key in
    conf/trainer/default.yaml; :meth:`imgcls.train.settings.EngineSettings.from_trainer`
    turns it into the engine's settings."""

    epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int = 512
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    log_every: int = 50
    monitor: str = "val_accuracy"
    monitor_mode: MonitorMode = MonitorMode.max
    channels_last: bool = False
    # false | true (= default) | default | reduce-overhead (CUDA graphs) | max-autotune
    compile: Any = False
    gradient_clip: float = 0.0  # 0 = off
    gradient_clip_mode: ClipMode = ClipMode.norm
    accumulate_batches: int = 1
    ema: EmaConfig = field(default_factory=EmaConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    save_top_k: int = 1
    fast_dev_run: bool = False
    limit_train_batches: int = 0  # 0 = all
    deterministic: bool = False
    strategy: str = "auto"
    lookahead: LookaheadConfig = field(default_factory=LookaheadConfig)  # issue 14 (airbench)
    test_tta: List[str] = field(default_factory=list)  # noqa: UP006  (views: imgcls.train.tta)


class LoaderMode(Enum):
    auto = "auto"
    memory = "memory"
    dataloader = "dataloader"


@dataclass
class DataConfig:
    """How batches are made (imgcls.data.pipeline): in device memory or by a DataLoader."""

    loader: LoaderMode = LoaderMode.auto
    memory_mb: int = 4096  # auto: datasets up to this size (uint8) are held in memory


@dataclass
class SweepConfig:
    # A sweep folder to re-run into: finished jobs are skipped (matched by config hash).
    resume: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)


@dataclass
class ReportConfig:
    # Write report.html into the run folder (and the sweep folder) at the end: the HTML
    # report of imgcls.evaluate.html_report. report.html=false skips it.
    html: bool = True


@dataclass
class TrainConfig:
    """The whole ``imgcls train`` config (conf/train.yaml): one node per config group
    (checked against the registries by :func:`imgcls.app.validation.validate`, since their
    keys depend on the option chosen), the typed trainer and data settings, and the keys
    that say where a run goes (``output_root``) or how it continues (``resume``, ``sweep``), and
    what it writes at the end besides its results (``report``)."""

    model: Any = MISSING
    dataset: Any = MISSING
    augment: Any = MISSING
    scheduler: Any = MISSING
    regularizer: Any = field(default_factory=dict)
    optimizer: Any = MISSING
    logger: Any = field(default_factory=dict)
    method: Any = MISSING
    # finetune.from / freeze / backbone_lr_mult (keys in conf/train.yaml; checked by
    # imgcls.transfer.checks, since 'from' cannot be a dataclass field)
    finetune: Any = field(default_factory=dict)
    teacher: Optional[str] = None  # noqa: UP045  (method=distill teacher=<run dir>)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    output_root: str = "outputs"
    # The model family's recipe (conf/recipe/<family>.yaml) that set this run's defaults.
    recipe: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)
    resume: str | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
