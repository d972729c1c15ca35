"""EfficientNet-B0 to B7 on torchvision's implementation.

Compound scaling (Tan & Le, 2019) grows depth by α^φ, width by β^φ and resolution by γ^φ
(α=1.2, β=1.1, γ=1.15); torchvision's B1-B7 use the rounded multipliers of the reference
implementation, listed in :mod:`imgcls.config.catalog` and by ``imgcls list models``.
The ``cifar`` stem makes the stem conv and the first stride-2 stage stride 1 (4x less
downsampling, parameters unchanged), so a 32x32 input ends at 4x4 instead of 1x1.
``dropout`` is the classifier's; null means the variant's own (0.2 for B0 ... 0.5 for B7).
``stochastic_depth`` is the largest rate of dropping a block's residual branch (it grows
linearly with depth up to this); null means torchvision's 0.2. Short runs on small data
underfit with both, which is why the efficientnet recipe turns them off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from imgcls.config.catalog import FAMILIES
from imgcls.config.options.models import EfficientnetOptions, Stem
from imgcls.models.adapt import conv_like
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

if TYPE_CHECKING:  # torchvision (1.5 s to import) waits until one of these is built
    from torchvision.models import efficientnet as tv_efficientnet

STOCHASTIC_DEPTH = 0.2  # torchvision's default for B0-B7


def _first_strided_conv(module: nn.Module) -> nn.Conv2d | None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d) and tuple(layer.stride) == (2, 2):
            return layer
    return None


@register_family("efficientnet", EfficientnetOptions)
def efficientnet(
    options: EfficientnetOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> tv_efficientnet.EfficientNet:
    """torchvision's EfficientNet of ``options.variant``, its stem fitted to the input."""
    from torchvision.models import efficientnet as tv_efficientnet

    variant = options.variant
    scaling = FAMILIES["efficientnet"].variant(variant).scaling
    assert scaling is not None
    rate = scaling.dropout if options.dropout is None else options.dropout
    depth_rate = STOCHASTIC_DEPTH if options.stochastic_depth is None else options.stochastic_depth
    model: tv_efficientnet.EfficientNet = getattr(tv_efficientnet, variant)(
        weights=None, num_classes=num_classes, dropout=rate, stochastic_depth_prob=depth_rate
    )
    stem_conv = model.features[0][0]
    if resolve_stem(options.stem, image_size) is Stem.cifar:
        model.features[0][0] = conv_like(stem_conv, in_channels, stride=1)
        strided = _first_strided_conv(model.features[1:])
        if strided is not None:
            strided.stride = (1, 1)
    elif in_channels != 3:
        model.features[0][0] = conv_like(stem_conv, in_channels)
    if options.pretrained:
        load_pretrained(model, variant)
    return model
