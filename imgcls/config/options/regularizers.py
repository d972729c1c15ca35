"""Options of the regularizers (``conf/regularizer/``, several at once); built by
:mod:`imgcls.train.regularizers` and :mod:`imgcls.transfer.l2sp`."""

from __future__ import annotations

from dataclasses import dataclass

from imgcls.config.options.base import Options, at_least, probability, schema


@schema("regularizer", "none")
@dataclass
class NoRegularizerOptions(Options):
    """No regularizer beyond what the model and optimizer already have."""


@schema("regularizer", "l2")
@dataclass
class L2Options(Options):
    """Weight decay on the optimizer (wins over optimizer.weight_decay)."""

    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        at_least("weight_decay", self.weight_decay, 0)


@schema("regularizer", "label_smoothing")
@dataclass
class LabelSmoothingOptions(Options):
    """Targets of 1 - alpha on the true class, alpha spread over all classes."""

    alpha: float = 0.1

    def __post_init__(self) -> None:
        probability("alpha", self.alpha, high_open=True)


@schema("regularizer", "l1")
@dataclass
class L1Options(Options):
    """strength * sum(|w|) added to the loss."""

    strength: float = 1e-5

    def __post_init__(self) -> None:
        at_least("strength", self.strength, 0)


@schema("regularizer", "dropout")
@dataclass
class DropoutOptions(Options):
    """The rate of every dropout layer of the model."""

    rate: float = 0.5

    def __post_init__(self) -> None:
        probability("rate", self.rate, high_open=True)


@schema("regularizer", "l2sp")
@dataclass
class L2SPOptions(Options):
    """alpha * ||w - w_pretrained||^2 over the weights loaded by finetune.from."""

    alpha: float = 0.01

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0)
