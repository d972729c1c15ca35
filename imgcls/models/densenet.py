"""DenseNet-121/161/169/201 (torchvision's) and a small DenseNet-BC for 32x32 inputs.

``densenet_bc`` is Huang et al.'s CIFAR network: a 3x3 stem conv with 2k channels, three
dense blocks of (depth - 4) / 6 bottleneck layers each, growth rate k and compression 0.5
(depth 100, k 12 is the paper's 0.8M-parameter model; the default depth 40 is smaller).
The ``cifar`` stem (3x3 stride-1 conv, no max-pool) is that paper's stem; transitions'
pools are skipped below 2 pixels. ``dropout`` is torchvision's ``drop_rate`` after each
dense layer (the paper used 0.2 without augmentation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from imgcls.config.options.models import DensenetOptions, Stem
from imgcls.models.adapt import conv_like, fit_pools
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

if TYPE_CHECKING:  # torchvision (1.5 s to import) waits until one of these is built
    from torchvision.models import densenet as tv_densenet

BC_GROWTH, BC_DEPTH = 12, 40


def densenet_bc(
    num_classes: int, growth_rate: int = BC_GROWTH, depth: int = BC_DEPTH, dropout: float = 0.0
) -> tv_densenet.DenseNet:
    """Huang et al.'s DenseNet-BC (``depth`` = 6n + 4, checked by the options)."""
    from torchvision.models import densenet as tv_densenet

    layers = (depth - 4) // 6
    return tv_densenet.DenseNet(
        growth_rate=growth_rate,
        block_config=(layers, layers, layers),
        num_init_features=2 * growth_rate,
        bn_size=4,
        drop_rate=dropout,
        num_classes=num_classes,
    )


@register_family("densenet", DensenetOptions)
def densenet(
    options: DensenetOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> tv_densenet.DenseNet:
    """DenseNet-BC or torchvision's DenseNet of ``options.variant``."""
    from torchvision.models import densenet as tv_densenet

    variant, dropout = options.variant, options.dropout
    if variant == "densenet_bc":
        model = densenet_bc(
            num_classes,
            BC_GROWTH if options.growth_rate is None else options.growth_rate,
            BC_DEPTH if options.depth is None else options.depth,
            dropout,
        )
    else:
        model = getattr(tv_densenet, variant)(
            weights=None, num_classes=num_classes, drop_rate=dropout
        )
    features = model.features
    if resolve_stem(options.stem, image_size) is Stem.cifar:
        features.conv0 = conv_like(features.conv0, in_channels, kernel_size=3, stride=1, padding=1)
        features.pool0 = nn.Identity()
    elif in_channels != 3:
        features.conv0 = conv_like(features.conv0, in_channels)
    fit_pools(features, image_size)
    if options.pretrained:
        load_pretrained(model, variant)
    return model
