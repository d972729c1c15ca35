"""Options of the losses (``conf/loss/``); built by :mod:`imgcls.train.losses`.

Every loss takes per-class weights for skewed classes: ``class_weights=auto`` computes them
from the training labels (``weighting``: inverse frequency, or the effective number of
samples of Cui et al. 2019 with ``beta``), a list gives one weight per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from imgcls.base.errors import OptionError
from imgcls.config.options.base import Options, at_least, choice, require, schema, show


class Weighting(Enum):
    """How ``class_weights=auto`` weighs a class with n training images: 1/n, or
    (1 - beta) / (1 - beta**n), the inverse of its effective number of samples."""

    inverse_frequency = "inverse_frequency"
    effective_number = "effective_number"


def _class_weights(value: Any) -> Any:
    """null, ``auto``, or a list of positive numbers (one per class, checked when the
    dataset is known)."""
    if value is None or value == "auto":
        return value
    if (
        isinstance(value, (list, tuple))
        or hasattr(value, "__iter__")
        and not isinstance(value, str)
    ):
        weights = list(value)
        ok = bool(weights) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights
        )
        if ok:
            return [float(w) for w in weights]
    raise OptionError(
        f"class_weights={show(value)} is invalid: use null, auto, or a list of positive "
        "numbers, one per class (e.g. [1, 5, 20])"
    )


@dataclass
class LossOptions(Options):
    """What every loss shares: per-class weights for skewed classes."""

    class_weights: Any = None  # null | auto | [w_1, ..., w_C]
    weighting: Weighting = Weighting.inverse_frequency
    beta: float = 0.999  # weighting=effective_number

    def __post_init__(self) -> None:
        self.class_weights = _class_weights(self.class_weights)
        self.weighting = choice(Weighting, "weighting", self.weighting)
        require(0.0 < self.beta < 1.0, "beta", self.beta, "use a value in (0, 1), e.g. 0.999")


@schema("loss", "cross_entropy")
@dataclass
class CrossEntropyOptions(LossOptions):
    """Softmax cross-entropy for one label per image; per-label binary cross-entropy when an
    image carries several."""


@schema("loss", "bce")
@dataclass
class BceOptions(LossOptions):
    """Binary cross-entropy on a sigmoid per class (one-vs-rest for single-label data)."""


@schema("loss", "focal")
@dataclass
class FocalOptions(LossOptions):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)**gamma."""

    gamma: float = 2.0
    alpha: float = (
        -1.0
    )  # sigmoid form only: weight alpha on positives, 1 - alpha on negatives; < 0 = off

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("gamma", self.gamma, 0)
        require(self.alpha < 0 or self.alpha <= 1, "alpha", self.alpha, "use [0, 1], or -1 (off)")


@schema("loss", "asymmetric")
@dataclass
class AsymmetricOptions(LossOptions):
    """Asymmetric loss (Ridnik et al. 2021): focusing gamma_pos on positives, gamma_neg on
    negatives, whose probabilities are shifted down by ``clip`` first."""

    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("gamma_pos", self.gamma_pos, 0)
        at_least("gamma_neg", self.gamma_neg, 0)
        require(0.0 <= self.clip < 1.0, "clip", self.clip, "use [0, 1)")
