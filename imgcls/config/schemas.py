"""The config schemas: typed dataclasses Hydra checks every composed key against.

They are stored in Hydra's ConfigStore (:func:`imgcls.config.compose.register_configs`), so
``trainer.epochs=abc`` fails while composing, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from imgcls.config.options.base import at_least, choice, positive, probability
from imgcls.config.options.trainer import TrainerOptions


class LoaderMode(Enum):
    """How batches are made: in device memory, by a DataLoader, or chosen by size (auto)."""

    auto = "auto"
    memory = "memory"
    dataloader = "dataloader"


class SamplerMode(Enum):
    """How the training images of an epoch are drawn: a permutation (none), or with
    replacement so that rare classes are seen as often as frequent ones (balanced)."""

    none = "none"
    balanced = "balanced"


class CalibrateMode(Enum):
    """What the end of a run does to the probabilities (imgcls.evaluate.calibration): nothing,
    or temperature scaling fitted on the validation split."""

    none = "none"
    temperature = "temperature"


@dataclass
class DataConfig:
    """How batches are made (imgcls.data.pipeline): in device memory or by a DataLoader,
    how the training split is sampled (imgcls.data.sampling), and whether image files are
    decoded once into a cache (imgcls.data.cache)."""

    loader: LoaderMode = LoaderMode.auto
    memory_mb: int = 4096  # auto: datasets up to this size (uint8) are held in memory
    # balanced: class-balanced draws (single-label) or repeat-factor sampling (multi-label)
    sampler: SamplerMode = SamplerMode.none
    # repeat-factor sampling: labels in fewer than this fraction of images are oversampled
    repeat_threshold: float = 0.1
    # Keep image files decoded once in a memory-mapped cache (imgcls.data.cache): later runs
    # on the same files, sizes, modification times and decoding options read it at once.
    cache: bool = True
    # Where: default $IMGCLS_CACHE_DIR, else $XDG_CACHE_HOME/imgcls, else ~/.cache/imgcls.
    cache_dir: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)

    def __post_init__(self) -> None:
        self.loader = choice(LoaderMode, "loader", self.loader)
        self.sampler = choice(SamplerMode, "sampler", self.sampler)
        at_least("memory_mb", self.memory_mb, 0)
        probability("repeat_threshold", self.repeat_threshold)
        positive("repeat_threshold", self.repeat_threshold)


@dataclass
class SweepConfig:
    """``sweep.*``: how a sweep continues (``sweep.resume=<dir>`` re-runs into its folder)."""

    # A sweep folder to re-run into: finished jobs are skipped (matched by config hash).
    resume: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)


@dataclass
class ReportConfig:
    """``report.*``: what a run writes besides its results (``report.html``)."""

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
    loss: Any = MISSING
    # finetune.from / freeze / backbone_lr_mult (keys in conf/train.yaml; checked by
    # imgcls.transfer.checks, since 'from' cannot be a dataclass field)
    finetune: Any = field(default_factory=dict)
    teacher: Optional[str] = None  # noqa: UP045  (method=distill teacher=<run dir>)
    trainer: TrainerOptions = field(default_factory=TrainerOptions)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    output_root: str = "outputs"
    # The model family's recipe (conf/recipe/<family>.yaml) that set this run's defaults.
    recipe: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)
    resume: str | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    # temperature: fit one temperature on the validation logits at the end of the run
    # (stored in best.pt and summary.json; eval, predict and export apply it)
    calibrate: CalibrateMode = CalibrateMode.none
