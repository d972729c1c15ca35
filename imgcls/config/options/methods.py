"""Options of the training methods (``conf/method/``); built by :mod:`imgcls.transfer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing.Dict)

from imgcls.config.options.base import Options, at_least, positive, probability, schema


@schema("method", "standard")
@dataclass
class StandardOptions(Options):
    """Supervised training with cross-entropy on the labelled dataset."""


@schema("method", "dann")
@dataclass
class DannOptions(Options):
    """Domain-adversarial training. ``target_dataset`` is a dataset config chosen by name
    (``dataset@method.target_dataset=<dataset>``): a plain mapping here, checked against that
    dataset's own options by :func:`imgcls.transfer.checks.validate_transfer`."""

    target_dataset: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    lambda_max: float = 1.0  # lambda = lambda_max * (2 / (1 + exp(-10 p)) - 1)
    domain_hidden: int = 64  # hidden units of the domain classifier

    def __post_init__(self) -> None:
        at_least("lambda_max", self.lambda_max, 0)
        at_least("domain_hidden", self.domain_hidden, 1)


@schema("method", "distill")
@dataclass
class DistillOptions(Options):
    """Knowledge distillation from ``teacher`` (a run directory or checkpoint; required when
    the method is built, so that the config file validates without one)."""

    teacher: Optional[str] = None  # noqa: UP045  (OmegaConf needs typing.Optional)
    temperature: float = 4.0
    alpha: float = 0.7  # the soft term's weight

    def __post_init__(self) -> None:
        positive("temperature", self.temperature)
        probability("alpha", self.alpha)
