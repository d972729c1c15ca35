"""DenseNet-121/161/169/201 (torchvision's) and a small DenseNet-BC for 32x32 inputs.

``densenet_bc`` is Huang et al.'s CIFAR network: a 3x3 stem conv with 2k channels, three
dense blocks of (depth - 4) / 6 bottleneck layers each, growth rate k and compression 0.5
(depth 100, k 12 is the paper's 0.8M-parameter model; the default depth 40 is smaller).
The ``cifar`` stem (3x3 stride-1 conv, no max-pool) is that paper's stem; transitions'
pools are skipped below 2 pixels. ``dropout`` is torchvision's ``drop_rate`` after each
dense layer (the paper used 0.2 without augmentation).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import densenet as tv_densenet

from imgcls.base.errors import UserError
from imgcls.models.adapt import check_dropout, conv_like, fit_pools
from imgcls.models.catalog import FAMILIES
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

BC_GROWTH, BC_DEPTH = 12, 40


def densenet_bc(
    num_classes: int, growth_rate: int = BC_GROWTH, depth: int = BC_DEPTH, dropout: float = 0.0
) -> tv_densenet.DenseNet:
    if growth_rate < 1:
        raise UserError(f"model.growth_rate={growth_rate} is invalid: it must be at least 1")
    if depth < 10 or (depth - 4) % 6:
        raise UserError(
            f"model.depth={depth} is invalid: DenseNet-BC needs depth = 6n + 4 with n >= 1 "
            f"(e.g. 40, 100, 190)"
        )
    layers = (depth - 4) // 6
    return tv_densenet.DenseNet(
        growth_rate=growth_rate,
        block_config=(layers, layers, layers),
        num_init_features=2 * growth_rate,
        bn_size=4,
        drop_rate=dropout,
        num_classes=num_classes,
    )


@register_family("densenet")
def densenet(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    variant: str = "densenet_bc",
    stem: str = "auto",
    dropout: float = 0.0,
    growth_rate: int | None = None,
    depth: int | None = None,
    pretrained: bool = False,
) -> tv_densenet.DenseNet:
    FAMILIES["densenet"].variant(variant)
    dropout = check_dropout(dropout)
    if variant == "densenet_bc":
        model = densenet_bc(
            num_classes,
            BC_GROWTH if growth_rate is None else growth_rate,
            BC_DEPTH if depth is None else depth,
            dropout,
        )
    else:
        for key, value in (("growth_rate", growth_rate), ("depth", depth)):
            if value is not None:
                raise UserError(
                    f"model.{key}={value} applies only to densenet_bc; {variant} is fixed "
                    f"(set model.{key}=null)"
                )
        model = getattr(tv_densenet, variant)(
            weights=None, num_classes=num_classes, drop_rate=dropout
        )
    features = model.features
    if resolve_stem(stem, image_size) == "cifar":
        features.conv0 = conv_like(features.conv0, in_channels, kernel_size=3, stride=1, padding=1)
        features.pool0 = nn.Identity()
    elif in_channels != 3:
        features.conv0 = conv_like(features.conv0, in_channels)
    fit_pools(features, image_size)
    if pretrained:
        load_pretrained(model, variant)
    return model
