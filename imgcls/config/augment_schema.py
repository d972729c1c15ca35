"""The augment config: every component with its parameters, all off by default (no torch here).

Each preset in ``conf/augment/`` starts from these defaults (``/augment_components@_here_``)
and switches components on, so any component can be added to any preset by an override:
``augment=basic augment.color.p=0.8 augment.color.brightness=0.4``. A component with
probability ``p`` (or a flip/grayscale probability) of 0 is off. Typos and wrong types fail
while composing because this schema is typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing generics)


@dataclass
class CropConfig:
    p: float = 0.0  # probability per image
    padding: int = 4  # padding on every side before a same-size random crop
    padding_mode: str = "constant"  # constant (zeros) or reflect (airbench)


@dataclass
class ResizedCropConfig:
    p: float = 0.0
    scale: List[float] = field(default_factory=lambda: [0.08, 1.0])  # area fraction range  # noqa: UP006
    ratio: List[float] = field(default_factory=lambda: [0.75, 1.3333])  # aspect ratio range  # noqa: UP006


@dataclass
class AffineConfig:
    p: float = 0.0
    degrees: float = 0.0  # rotation drawn from [-degrees, degrees]
    translate: List[float] = field(default_factory=lambda: [0.0, 0.0])  # fraction of width, height  # noqa: UP006
    scale: List[float] = field(default_factory=lambda: [1.0, 1.0])  # zoom factor range  # noqa: UP006


@dataclass
class ColorConfig:
    p: float = 0.0
    brightness: float = 0.0  # factor from [max(0, 1-b), 1+b]
    contrast: float = 0.0  # factor from [max(0, 1-c), 1+c]
    saturation: float = 0.0  # factor from [max(0, 1-s), 1+s]
    hue: float = 0.0  # shift from [-h, h] (h <= 0.5)


@dataclass
class ErasingConfig:
    p: float = 0.0
    scale: List[float] = field(default_factory=lambda: [0.02, 0.33])  # noqa: UP006
    ratio: List[float] = field(default_factory=lambda: [0.3, 3.3])  # noqa: UP006
    value: float = 0.0  # fill value on the 0..1 pixel scale


@dataclass
class RandAugmentConfig:
    p: float = 0.0
    num_ops: int = 2
    magnitude: int = 9


@dataclass
class AutoAugmentConfig:
    p: float = 0.0
    policy: str = "cifar10"  # cifar10, imagenet or svhn


@dataclass
class TrivialAugmentConfig:
    p: float = 0.0


@dataclass
class AugMixConfig:
    p: float = 0.0
    severity: int = 3
    width: int = 3
    depth: int = -1
    alpha: float = 1.0


@dataclass
class MixConfig:
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weight; 0 = no MixUp
    cutmix_alpha: float = 0.0  # 0 = no CutMix
    prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # with both on: probability of CutMix instead of MixUp
    stop_epoch: Optional[int] = None  # last epoch with mixing (None: every epoch)  # noqa: UP045


@dataclass
class AugmentComponents:
    """All augment keys; the order of application is fixed (see imgcls.data.augment)."""

    name: str = "none"
    resized_crop: ResizedCropConfig = field(default_factory=ResizedCropConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    affine: AffineConfig = field(default_factory=AffineConfig)
    hflip: float = 0.0
    # Alternating flip (airbench): a fixed half of the images is mirrored in odd epochs, the
    # other half in even epochs, so every image is mirrored in every other epoch. Instead of
    # hflip; needs the in-memory data path.
    alternating_flip: bool = False
    vflip: float = 0.0
    autoaugment: AutoAugmentConfig = field(default_factory=AutoAugmentConfig)
    randaugment: RandAugmentConfig = field(default_factory=RandAugmentConfig)
    trivialaugment: TrivialAugmentConfig = field(default_factory=TrivialAugmentConfig)
    augmix: AugMixConfig = field(default_factory=AugMixConfig)
    color: ColorConfig = field(default_factory=ColorConfig)
    grayscale: float = 0.0
    erasing: ErasingConfig = field(default_factory=ErasingConfig)
    mix: MixConfig = field(default_factory=MixConfig)
