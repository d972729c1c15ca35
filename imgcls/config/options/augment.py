"""Options of the augment presets (``conf/augment/``); built by :mod:`imgcls.data.augment`.

Every preset is the same pipeline with some components switched on, so one class serves
every ``conf/augment/<name>.yaml``: any component can be added to any preset by an override
(``augment=basic augment.color.p=0.8 augment.color.brightness=0.4``). A component with
probability ``p`` (or a flip/grayscale probability) of 0 is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing generics)

from imgcls.base.errors import OptionError
from imgcls.config.files import group_options
from imgcls.config.options.base import (
    Options,
    at_least,
    choice,
    ordered_pair,
    probability,
    require,
    schema,
)


class PaddingMode(str, Enum):
    """How the random crop pads: zeros, or the image reflected (airbench)."""

    constant = "constant"
    reflect = "reflect"


class AutoAugmentPolicy(str, Enum):
    """torchvision's AutoAugment policies."""

    cifar10 = "cifar10"
    imagenet = "imagenet"
    svhn = "svhn"


@dataclass
class CropOptions:
    """Same-size random crop of the padded image."""

    p: float = 0.0  # probability per image
    padding: int = 4  # padding on every side
    padding_mode: PaddingMode = PaddingMode.constant

    def __post_init__(self) -> None:
        probability("p", self.p)
        at_least("padding", self.padding, 0)
        self.padding_mode = choice(PaddingMode, "padding_mode", self.padding_mode)


@dataclass
class ResizedCropOptions:
    """Random area and aspect ratio, resized back to the image size."""

    p: float = 0.0
    scale: List[float] = field(default_factory=lambda: [0.08, 1.0])  # noqa: UP006  (area fraction)
    ratio: List[float] = field(default_factory=lambda: [0.75, 1.3333])  # noqa: UP006  (aspect)

    def __post_init__(self) -> None:
        probability("p", self.p)
        ordered_pair("scale", self.scale, 0.0, 1.0)
        ordered_pair("ratio", self.ratio, 1e-3)


@dataclass
class AffineOptions:
    """One rotation, translation and zoom per image."""

    p: float = 0.0
    degrees: float = 0.0  # rotation drawn from [-degrees, degrees]
    translate: List[float] = field(default_factory=lambda: [0.0, 0.0])  # noqa: UP006  (of w, h)
    scale: List[float] = field(default_factory=lambda: [1.0, 1.0])  # noqa: UP006  (zoom range)

    def __post_init__(self) -> None:
        probability("p", self.p)
        at_least("degrees", self.degrees, 0)
        ordered_pair("scale", self.scale, 1e-3)
        ok = len(self.translate) == 2 and all(0.0 <= t <= 1.0 for t in self.translate)
        rule = "give [fraction of width, fraction of height], each in [0, 1]"
        require(ok, "translate", list(self.translate), rule)


@dataclass
class ColorOptions:
    """Brightness, contrast and saturation factors from [max(0, 1-x), 1+x], hue from [-h, h]."""

    p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self) -> None:
        probability("p", self.p)
        for key in ("brightness", "contrast", "saturation"):
            at_least(key, getattr(self, key), 0)
        require(0.0 <= self.hue <= 0.5, "hue", self.hue, "it must be in [0, 0.5]")


@dataclass
class ErasingOptions:
    """Random erasing of a box of ``scale`` area and ``ratio`` aspect, filled with ``value``."""

    p: float = 0.0
    scale: List[float] = field(default_factory=lambda: [0.02, 0.33])  # noqa: UP006
    ratio: List[float] = field(default_factory=lambda: [0.3, 3.3])  # noqa: UP006
    value: float = 0.0  # fill value on the 0..1 pixel scale

    def __post_init__(self) -> None:
        probability("p", self.p)
        ordered_pair("scale", self.scale, 0.0, 1.0)
        ordered_pair("ratio", self.ratio, 1e-3)


@dataclass
class RandAugmentOptions:
    """``num_ops`` random operations of strength ``magnitude`` (0..30)."""

    p: float = 0.0
    num_ops: int = 2
    magnitude: int = 9

    def __post_init__(self) -> None:
        probability("p", self.p)
        at_least("num_ops", self.num_ops, 0)
        require(0 <= self.magnitude <= 30, "magnitude", self.magnitude, "use 0..30")


@dataclass
class AutoAugmentOptions:
    """AutoAugment with one of its learned policies."""

    p: float = 0.0
    policy: AutoAugmentPolicy = AutoAugmentPolicy.cifar10

    def __post_init__(self) -> None:
        probability("p", self.p)
        self.policy = choice(AutoAugmentPolicy, "policy", self.policy)


@dataclass
class TrivialAugmentOptions:
    """TrivialAugment (wide): one random operation of random strength."""

    p: float = 0.0

    def __post_init__(self) -> None:
        probability("p", self.p)


@dataclass
class AugMixOptions:
    """AugMix: ``width`` chains of ``depth`` operations (-1: random 1..3) blended."""

    p: float = 0.0
    severity: int = 3
    width: int = 3
    depth: int = -1
    alpha: float = 1.0

    def __post_init__(self) -> None:
        probability("p", self.p)
        require(1 <= self.severity <= 10, "severity", self.severity, "use 1..10")
        at_least("width", self.width, 1)


@dataclass
class MixOptions:
    """MixUp and CutMix of whole batches."""

    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weight; 0 = no MixUp
    cutmix_alpha: float = 0.0  # 0 = no CutMix
    prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # with both on: probability of CutMix instead of MixUp
    stop_epoch: Optional[int] = None  # noqa: UP045  (last epoch with mixing; None: every epoch)

    def __post_init__(self) -> None:
        at_least("mixup_alpha", self.mixup_alpha, 0)
        at_least("cutmix_alpha", self.cutmix_alpha, 0)
        probability("prob", self.prob)
        probability("switch_prob", self.switch_prob)
        if self.stop_epoch is not None:
            at_least("stop_epoch", self.stop_epoch, 0)


@schema("augment", *group_options("augment"))
@dataclass
class AugmentOptions(Options):
    """Every augment component; the order of application is fixed (see imgcls.data.augment)."""

    resized_crop: ResizedCropOptions = field(default_factory=ResizedCropOptions)
    crop: CropOptions = field(default_factory=CropOptions)
    affine: AffineOptions = field(default_factory=AffineOptions)
    hflip: float = 0.0
    # Alternating flip (airbench): a fixed half of the images is mirrored in odd epochs, the
    # other half in even epochs, so every image is mirrored in every other epoch. Instead of
    # hflip; needs the in-memory data path.
    alternating_flip: bool = False
    vflip: float = 0.0
    autoaugment: AutoAugmentOptions = field(default_factory=AutoAugmentOptions)
    randaugment: RandAugmentOptions = field(default_factory=RandAugmentOptions)
    trivialaugment: TrivialAugmentOptions = field(default_factory=TrivialAugmentOptions)
    augmix: AugMixOptions = field(default_factory=AugMixOptions)
    color: ColorOptions = field(default_factory=ColorOptions)
    grayscale: float = 0.0
    erasing: ErasingOptions = field(default_factory=ErasingOptions)
    mix: MixOptions = field(default_factory=MixOptions)

    def __post_init__(self) -> None:
        for key in ("hflip", "vflip", "grayscale"):
            probability(key, getattr(self, key))
        if self.alternating_flip and self.hflip > 0:
            raise OptionError("alternating_flip=true replaces hflip: set hflip=0")
