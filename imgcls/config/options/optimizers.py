"""Options of the optimizers (``conf/optimizer/``); built by :mod:`imgcls.train.optimizers`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing.List)

from imgcls.base.errors import OptionError
from imgcls.config.options.base import Options, positive, probability, require, schema


@dataclass
class OptimizerOptions(Options):
    """What every optimizer takes. With ``decay_norm_and_bias=false`` weight decay skips
    parameters of at most one dimension (biases, norm scales), since decaying them only
    fights the normalisation. ``layer_decay`` d (layer-wise learning-rate decay, for
    fine-tuning ViT/ConvNeXt/Swin and timm models) gives layer i of L the rate lr · d^(L − i):
    the head keeps lr, each block below it d times less (None or 1: off)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = False
    layer_decay: Optional[float] = None  # noqa: UP045  (OmegaConf 2.3 needs typing.Optional)

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", self.lr, "the learning rate must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "it must be >= 0")
        if self.layer_decay is not None:
            require(
                0 < self.layer_decay <= 1,
                "layer_decay",
                self.layer_decay,
                "use (0, 1] (each layer's rate is this times the one above it), or null for off",
            )


@schema("optimizer", "sgd")
@dataclass
class SgdOptions(OptimizerOptions):
    """Stochastic gradient descent with (Nesterov) momentum."""

    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        probability("momentum", self.momentum, high_open=True)
        if self.nesterov and self.momentum <= 0:
            raise OptionError("nesterov=true needs momentum > 0")


@dataclass
class AdamFamilyOptions(OptimizerOptions):
    """Adam's moment decay rates."""

    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # noqa: UP006

    def __post_init__(self) -> None:
        super().__post_init__()
        betas = list(self.betas)
        ok = len(betas) == 2 and all(0 <= b < 1 for b in betas)
        require(ok, "betas", betas, "use two values in [0, 1)")


@schema("optimizer", "adam")
@dataclass
class AdamOptions(AdamFamilyOptions):
    """Adam (weight decay added to the gradient)."""


@schema("optimizer", "adamw")
@dataclass
class AdamWOptions(AdamFamilyOptions):
    """AdamW (decoupled weight decay)."""

    weight_decay: float = 0.05


@schema("optimizer", "rmsprop")
@dataclass
class RmspropOptions(OptimizerOptions):
    """RMSprop."""

    alpha: float = 0.99
    momentum: float = 0.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        probability("momentum", self.momentum, high_open=True)
        positive("eps", self.eps)
        require(0 < self.alpha < 1, "alpha", self.alpha, "use (0, 1)")


@schema("optimizer", "nadam")
@dataclass
class NAdamOptions(AdamFamilyOptions):
    """NAdam: Adam with Nesterov momentum; ``decoupled_weight_decay`` makes its decay AdamW's."""

    lr: float = 2e-3
    momentum_decay: float = 4e-3
    decoupled_weight_decay: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.momentum_decay >= 0, "momentum_decay", self.momentum_decay, "use >= 0")
