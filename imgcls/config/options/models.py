"""Options of the models (``conf/model/``); built by the family modules of :mod:`imgcls.models`.

A family with variants (``resnet``) is registered under its own name, where ``variant`` picks
one, and under each variant's name (``resnet50``), where ``variant`` is that name; both use
the family's class. What imgcls supplies itself (``num_classes``, ``in_channels``,
``image_size``) comes from the dataset and is not an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional  # noqa: UP035  (OmegaConf 2.3 needs typing generics)

from imgcls.base.errors import OptionError, unknown_choice
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.options.base import (
    Options,
    at_least,
    choice,
    positive,
    probability,
    require,
    schema,
)
from imgcls.config.torchvision_catalog import (
    DEFAULT_TORCHVISION_MODEL,
    SMALL_STEM_PREFIXES,
    TORCHVISION_MODELS,
    VIT_PATCH,
    has_small_stem,
)


class Stem(str, Enum):
    """``auto``: ``cifar`` below 64 pixels, else ``imagenet``; ``cifar`` keeps small images
    whole (3x3 stride-1 stem, no early pool)."""

    auto = "auto"
    imagenet = "imagenet"
    cifar = "cifar"


class GlobalPool(str, Enum):
    """How the last feature map becomes one vector: ``avg`` (the mean: one object filling the
    image), ``max`` (the strongest response anywhere: an object in one corner of a mosaic or
    a tile), ``avgmax`` (the two concatenated)."""

    avg = "avg"
    max = "max"
    avgmax = "avgmax"


def dropout_rate(key: str, value: float | None) -> None:
    """A dropout rate in [0, 1) (None: the model's own)."""
    if value is not None:
        probability(key, value, high_open=True)


def stage_widths(key: str, values: Sequence[int], count: int | None = None) -> None:
    """One positive width per stage (exactly ``count`` of them if given)."""
    values = list(values)
    ok = bool(values) and (count is None or len(values) == count)
    rule = "use >= 1" if count is None else f"give {count} widths, each >= 1"
    require(ok and all(v >= 1 for v in values), key, values, rule)


def _family(name: str, *extra: str) -> tuple[str, ...]:
    """A family's registry names: the family and each of its variants."""
    return (name, *[v for v in FAMILIES[name].names() if v != name], *extra)


@dataclass
class FamilyOptions(Options):
    """A family of :mod:`imgcls.config.catalog`: its ``variant`` (None: the default, or the
    variant the model is named after) and the ``stem`` for the input size."""

    family = ""  # the catalogue's family name (a class attribute, not an option)

    variant: Optional[str] = None  # noqa: UP045
    stem: Stem = Stem.auto

    def __post_init__(self) -> None:
        family = FAMILIES[self.family]
        if self.name != family.name and self.name in family.names():  # resnet50 and the like
            require(
                self.variant in (None, self.name),
                "variant",
                self.variant,
                f"model '{self.name}' is a variant itself; choose the family, {family.name}, "
                "to pick another",
            )
            self.variant = self.name
        self.variant = family.variant(self.variant or family.default).name
        self.stem = choice(Stem, "stem", self.stem)


@schema("model", *_family("lenet"))
@dataclass
class LenetOptions(FamilyOptions):
    """LeNet-5 (``lenet5``: tanh, average pooling; ``lenet5_relu``)."""

    family = "lenet"


@dataclass
class PretrainedOptions(FamilyOptions):
    """torchvision's families: ``pretrained=true`` loads ImageNet weights from the local
    cache (no download)."""

    pretrained: bool = False


@dataclass
class ClassifierDropoutOptions(PretrainedOptions):
    """Families with dropout in their fully connected classifier."""

    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        dropout_rate("dropout", self.dropout)


@schema("model", *_family("alexnet"))
@dataclass
class AlexnetOptions(ClassifierDropoutOptions):
    """AlexNet."""

    family = "alexnet"


@schema("model", *_family("vgg"))
@dataclass
class VggOptions(ClassifierDropoutOptions):
    """VGG 11/13/16/19 (``_bn``: with batch norm)."""

    family = "vgg"


@schema("model", *_family("resnet"))
@dataclass
class ResnetOptions(PretrainedOptions):
    """torchvision's ResNets and the small-image ResNets (which ignore ``stem`` and have no
    published weights)."""

    family = "resnet"

    def __post_init__(self) -> None:
        super().__post_init__()
        variants = FAMILIES[self.family].variants
        if self.pretrained and not next(v for v in variants if v.name == self.variant).pretrained:
            with_weights = ", ".join(v.name for v in variants if v.pretrained)
            raise OptionError(
                f"pretrained=true: no weights are published for {self.variant} (a small-image "
                f"ResNet, trained from scratch); variants with ImageNet weights: {with_weights}"
            )


@schema("model", *_family("densenet"))
@dataclass
class DensenetOptions(PretrainedOptions):
    """DenseNet; ``growth_rate`` and ``depth`` (6n + 4) only for ``densenet_bc`` (None: 12
    and 40); ``dropout`` after each dense layer."""

    family = "densenet"
    dropout: float = 0.0
    growth_rate: Optional[int] = None  # noqa: UP045
    depth: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        dropout_rate("dropout", self.dropout)
        for key in ("growth_rate", "depth"):
            value = getattr(self, key)
            if value is not None and self.variant != "densenet_bc":
                raise OptionError(
                    f"{key}={value} applies only to densenet_bc; {self.variant} is fixed "
                    "(set it to null)"
                )
        if self.growth_rate is not None:
            at_least("growth_rate", self.growth_rate, 1)
        if self.depth is not None:
            rule = "DenseNet-BC needs depth = 6n + 4 with n >= 1 (e.g. 40, 100, 190)"
            require(self.depth >= 10 and (self.depth - 4) % 6 == 0, "depth", self.depth, rule)


@schema("model", *_family("efficientnet"))
@dataclass
class EfficientnetOptions(PretrainedOptions):
    """EfficientNet-B0..B7; ``dropout`` of the classifier (None: the variant's own) and
    ``stochastic_depth``, the deepest block's rate of skipping its branch (None: 0.2)."""

    family = "efficientnet"
    dropout: Optional[float] = None  # noqa: UP045
    stochastic_depth: Optional[float] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        dropout_rate("dropout", self.dropout)
        dropout_rate("stochastic_depth", self.stochastic_depth)


@schema("model", "simplecnn")
@dataclass
class SimpleCnnOptions(Options):
    """Blocks of two 3x3 convs of ``widths`` channels, then a ``hidden``-unit MLP."""

    widths: List[int] = field(default_factory=lambda: [32, 64, 128])  # noqa: UP006
    hidden: int = 512
    dropout: float = 0.5

    def __post_init__(self) -> None:
        stage_widths("widths", self.widths)
        at_least("hidden", self.hidden, 1)
        dropout_rate("dropout", self.dropout)


@schema("model", "bncnn")
@dataclass
class BnCnnOptions(Options):
    """Stages of ``depths[i]`` conv + batch norm + ReLU of ``widths[i]`` channels."""

    widths: List[int] = field(default_factory=lambda: [32, 64, 128])  # noqa: UP006
    depths: List[int] = field(default_factory=lambda: [1, 2, 2])  # noqa: UP006
    dropout: float = 0.0
    global_pool: GlobalPool = GlobalPool.avg

    def __post_init__(self) -> None:
        stage_widths("widths", self.widths)
        self.global_pool = choice(GlobalPool, "global_pool", self.global_pool)
        depths = list(self.depths)
        ok = len(depths) == len(self.widths) and all(d >= 1 for d in depths)
        rule = f"give one positive conv count per stage ({len(self.widths)} stages)"
        require(ok, "depths", depths, rule)
        dropout_rate("dropout", self.dropout)


@schema("model", "airbench")
@dataclass
class AirbenchOptions(Options):
    """The airbench94 network: three conv groups of ``widths`` channels."""

    widths: List[int] = field(default_factory=lambda: [64, 256, 256])  # noqa: UP006
    bn_momentum: float = 0.6  # running statistics keep this much per step
    scale: float = 1 / 9  # logits scale
    norm_bias_lr_mult: float = 64.0  # batch-norm biases train at this times the rate
    whiten_eps: float = 5e-4  # whitening filters scaled by 1/sqrt(eigenvalue + eps)
    whiten_images: int = 5000  # training images the whitening covariance comes from

    def __post_init__(self) -> None:
        stage_widths("widths", self.widths, count=3)
        probability("bn_momentum", self.bn_momentum, high_open=True)
        positive("norm_bias_lr_mult", self.norm_bias_lr_mult)
        positive("whiten_eps", self.whiten_eps)
        at_least("whiten_images", self.whiten_images, 1)


def torchvision_only_models() -> tuple[str, ...]:
    """torchvision's models that no imgcls family wraps (those keep their own options)."""
    return tuple(n for n in TORCHVISION_MODELS if n not in VARIANTS)


@schema("model", "torchvision", *torchvision_only_models())
@dataclass
class TorchvisionOptions(Options):
    """Any torchvision classifier: ``model=torchvision model.variant=<builder>`` (a name of
    ``torchvision.models.list_models()``; the families imgcls wraps keep their own files);
    ``pretrained`` loads its ImageNet weights from the local torch hub cache; ``patch_size``
    (Vision Transformers only; None: the model's own) cuts small images into more patches;
    ``stem`` as the families': ``auto`` is ``cifar`` below 64 pixels for the convnets whose
    stem adapts (first convolution at stride 1, no early max-pool), else torchvision's;
    ``bn_momentum`` sets every batch norm's (None: the architecture's own);
    ``drop_path_rate`` is the deepest block's stochastic-depth rate (None: the model's own)."""

    variant: Optional[str] = None  # noqa: UP045  (None: DEFAULT_TORCHVISION_MODEL)
    pretrained: bool = False
    patch_size: Optional[int] = None  # noqa: UP045
    stem: Stem = Stem.auto
    bn_momentum: Optional[float] = None  # noqa: UP045  (None: the architecture's own)
    drop_path_rate: Optional[float] = None  # noqa: UP045

    def __post_init__(self) -> None:
        if self.name != "torchvision":  # registered under each builder's name, as variants are
            require(
                self.variant in (None, self.name),
                "variant",
                self.variant,
                f"model '{self.name}' is a variant itself; choose model=torchvision to pick another",
            )
            self.variant = self.name
        self.variant = self.variant or DEFAULT_TORCHVISION_MODEL
        torchvision_name(self.variant)
        self.stem = choice(Stem, "stem", self.stem)
        if self.bn_momentum is not None:
            require(
                0.0 < self.bn_momentum <= 1.0,
                "bn_momentum",
                self.bn_momentum,
                "use a number in (0, 1] (PyTorch's default 0.1), or null for the architecture's own",
            )
        require(
            self.stem is not Stem.cifar or has_small_stem(self.variant),
            "stem",
            self.stem,
            f"{self.variant} keeps torchvision's stem (a patch embedding, windows or several "
            "early reductions; ViTs take model.patch_size); the convnets whose stem adapts: "
            + ", ".join(f"{p}*" for p in SMALL_STEM_PREFIXES),
        )
        if self.patch_size is not None:
            require(
                self.variant in VIT_PATCH,
                "patch_size",
                self.patch_size,
                f"only the Vision Transformers ({', '.join(VIT_PATCH)}) have one; set it to null",
            )
            at_least("patch_size", self.patch_size, 1)
        if self.drop_path_rate is not None:
            probability("drop_path_rate", self.drop_path_rate, high_open=True)


def torchvision_name(name: str) -> None:
    """``model=torchvision model.variant=<name>``: a name torchvision lacks gets a
    did-you-mean over torchvision's list; one an imgcls family builds (resnet18) points to
    that family."""
    if name in VARIANTS and name in TORCHVISION_MODELS:
        family = VARIANTS[name].family
        raise OptionError(
            f"variant={name} is built by imgcls's own {family} family (small-image stem, "
            f"recipe): choose it with model={family} model.variant={name}"
        )
    if name not in TORCHVISION_MODELS:
        raise unknown_choice("torchvision model", name, TORCHVISION_MODELS)


TIMM_OWN_KEYWORDS = (
    "num_classes",
    "in_chans",
    "img_size",
    "drop_rate",
    "drop_path_rate",
    "pretrained",
    "pretrained_cfg",
    "checkpoint_path",
)
"""``timm.create_model`` keywords imgcls passes itself: not accepted in ``model.kwargs``."""


@schema("model", "timm")
@dataclass
class TimmOptions(Options):
    """Any timm architecture (``variant``, a name of ``timm.list_models()``), from the optional
    extra ``imgcls[timm]``. ``pretrained=true`` reads the arch's weights from the local
    Hugging Face cache (offline); ``weights`` is a local safetensors file or torch state dict.
    ``drop_path_rate`` null: the architecture's own. ``kwargs`` go to ``timm.create_model`` as
    they are (``{patch_size: 1}`` gives ConvNeXt a stride-1 stem for 28x28 images)."""

    variant: str = "resnet18"
    pretrained: bool = False
    weights: Optional[str] = None  # noqa: UP045
    drop_rate: float = 0.0
    drop_path_rate: Optional[float] = None  # noqa: UP045
    kwargs: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006

    def __post_init__(self) -> None:
        require(
            bool(self.variant.strip()),
            "variant",
            self.variant,
            "name a timm model (timm.list_models())",
        )
        dropout_rate("drop_rate", self.drop_rate)
        dropout_rate("drop_path_rate", self.drop_path_rate)
        if self.pretrained and self.weights:
            raise OptionError(
                f"weights={self.weights} and pretrained=true both load weights: keep one"
            )
        owned = sorted(set(self.kwargs) & set(TIMM_OWN_KEYWORDS))
        require(
            not owned,
            "kwargs",
            dict(self.kwargs),
            f"{', '.join(owned)} is set by imgcls (from the data or from the keys "
            "drop_rate/drop_path_rate/pretrained/weights): remove it from model.kwargs",
        )
