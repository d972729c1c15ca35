"""What the engine needs to know besides the objects it trains: :class:`EngineSettings`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from imgcls.config.values import compile_mode


@dataclass
class EngineSettings:
    """How the engine trains: the trainer config's values as plain numbers and strings, plus
    what only the run knows (the precision resolved for its device, DDP, a terminal).

    The engine never reads the config itself; :meth:`from_trainer` is the one place that
    turns ``cfg.trainer`` into these settings (``fast_dev_run`` included). Tests and
    benchmarks build it directly with keywords.
    """

    epochs: int
    precision: str = "32"
    log_every: int = 50
    monitor: str = "val_accuracy"
    monitor_mode: str = "max"
    show_progress: bool = False
    gradient_clip: float = 0.0  # 0 = off
    gradient_clip_mode: str = "norm"  # norm | value
    accumulate_batches: int = 1
    ema_decay: float = 0.0  # 0 = off
    early_stopping_patience: int = 0  # 0 = off
    early_stopping_monitor: str = "val_accuracy"
    early_stopping_mode: str = "max"
    early_stopping_min_delta: float = 0.0
    save_top_k: int = 1
    limit_train_batches: int = 0  # 0 = all
    limit_val_batches: int = 0  # 0 = all
    compile: str | None = None  # a torch.compile mode; None = eager
    distributed: bool = False  # DDP: gradients averaged over the processes, rank 0 writes
    is_main: bool = True
    lookahead_every: int = 0  # issue 14 (airbench): 0 = off (imgcls.train.lookahead)
    lookahead_decay: float = 0.0
    lookahead_power: float = 3.0
    test_tta: tuple[str, ...] = ()  # views averaged in the final test (imgcls.train.tta)

    def train_batches(self, loader_length: int) -> int:
        """Batches per training epoch, after ``limit_train_batches``."""
        limit = self.limit_train_batches
        return min(loader_length, limit) if limit > 0 else loader_length

    def optimizer_steps(self, loader_length: int) -> int:
        """Optimizer steps per epoch: one per ``accumulate_batches`` batches (and the rest)."""
        return -(-self.train_batches(loader_length) // self.accumulate_batches)

    @classmethod
    def from_trainer(
        cls,
        trainer: DictConfig,
        *,
        precision: str,
        show_progress: bool = False,
        distributed: bool = False,
        is_main: bool = True,
    ) -> EngineSettings:
        """The settings for ``cfg.trainer``; ``fast_dev_run`` is one epoch of one batch each."""
        plain: dict[str, Any] = OmegaConf.to_container(trainer, resolve=True, enum_to_str=True)
        same_named = {f.name for f in fields(cls)} & plain.keys()
        values = {name: plain[name] for name in same_named}
        stopping = plain["early_stopping"]
        values.update(
            precision=precision,
            show_progress=show_progress,
            distributed=distributed,
            is_main=is_main,
            ema_decay=float(plain["ema"]["decay"]),
            early_stopping_patience=stopping["patience"],
            early_stopping_monitor=str(stopping["monitor"]),
            early_stopping_mode=str(stopping["mode"]),
            early_stopping_min_delta=float(stopping["min_delta"]),
            gradient_clip=float(plain["gradient_clip"]),
            compile=compile_mode(plain["compile"]),
        )
        values.update(speed_options(plain))  # issue 14 (airbench)
        if plain["fast_dev_run"]:
            values.update(epochs=1, limit_train_batches=1, limit_val_batches=1)
        return cls(**values)


def speed_options(trainer: dict[str, Any]) -> dict[str, Any]:
    """The lookahead and test-time-augmentation settings of a plain trainer config."""
    lookahead = trainer.get("lookahead") or {}
    return {
        "lookahead_every": int(lookahead.get("every", 0)),
        "lookahead_decay": float(lookahead.get("decay", 0.0)),
        "lookahead_power": float(lookahead.get("power", 3.0)),
        "test_tta": tuple(trainer.get("test_tta") or ()),
    }
