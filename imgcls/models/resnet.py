"""ResNet on torchvision's implementation, with a stem chosen for the input size.

The ImageNet stem (7x7 stride-2 conv and a max-pool) shrinks a 32x32 image to 8x8 before
the first stage; the ``cifar`` stem (3x3 stride-1 conv, no pool) keeps small inputs whole.
resnet18/34 use basic blocks, resnet50/101/152 bottleneck blocks.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet as tv_resnet

from imgcls.models.adapt import conv_like
from imgcls.models.catalog import FAMILIES
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family


@register_family("resnet", "residual network (torchvision's ResNet) with a size-aware stem")
def resnet(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    variant: str = "resnet18",
    stem: str = "auto",
    pretrained: bool = False,
) -> tv_resnet.ResNet:
    FAMILIES["resnet"].variant(variant)
    model: tv_resnet.ResNet = getattr(tv_resnet, variant)(weights=None, num_classes=num_classes)
    if resolve_stem(stem, image_size) == "cifar":
        model.conv1 = conv_like(model.conv1, in_channels, kernel_size=3, stride=1, padding=1)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = conv_like(model.conv1, in_channels)
    if pretrained:
        load_pretrained(model, variant)
    return model
