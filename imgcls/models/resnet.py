"""ResNet on torchvision's implementation, with a stem chosen for the input size.

The ImageNet stem (7x7 stride-2 conv and a max-pool) shrinks a 32x32 image to 8x8 before
the first stage; the ``cifar`` stem (3x3 stride-1 conv, no pool) keeps small inputs whole.
resnet18/34 use basic blocks, resnet50/101/152 bottleneck blocks.

The small-image ResNets (resnet20/32/44/56/110, wrn16_4, wrn28_10, resnet9, seed_resnet)
are built by :mod:`imgcls.models.small_resnets`. They are 32x32 networks by design: ``stem``
is ignored for them (its value is still checked) and ``pretrained=true`` is an error, since
no weights are published for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from imgcls.config.options.models import ResnetOptions, Stem
from imgcls.models.adapt import conv_like
from imgcls.models.pretrained import load_pretrained
from imgcls.models.small_resnets import ARCHITECTURES as SMALL_RESNETS
from imgcls.models.small_resnets import build_small_resnet
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

if TYPE_CHECKING:  # torchvision (1.5 s to import) waits until one of these is built
    from torchvision.models import resnet as tv_resnet


@register_family("resnet", ResnetOptions)
def resnet(
    options: ResnetOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> nn.Module:
    """A ResNet of ``options.variant``."""
    from torchvision.models import resnet as tv_resnet

    variant, pretrained = options.variant, options.pretrained
    stem = resolve_stem(options.stem, image_size)
    if variant in SMALL_RESNETS:  # no published weights: refused by ResnetOptions
        return build_small_resnet(variant, num_classes, in_channels, image_size)
    model: tv_resnet.ResNet = getattr(tv_resnet, variant)(weights=None, num_classes=num_classes)
    if stem is Stem.cifar:
        model.conv1 = conv_like(model.conv1, in_channels, kernel_size=3, stride=1, padding=1)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = conv_like(model.conv1, in_channels)
    if pretrained:
        load_pretrained(model, variant)
    return model
