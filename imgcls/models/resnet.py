"""ResNet on torchvision's implementation, with a stem chosen for the input size.

The ImageNet stem (7x7 stride-2 conv and a max-pool) shrinks a 32x32 image to 8x8 before
the first stage; the ``cifar`` stem (3x3 stride-1 conv, no pool) keeps small inputs whole.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet as tv_resnet

from imgcls.errors import unknown_choice
from imgcls.models.stems import resolve_stem
from imgcls.registry import MODELS

VARIANTS = {
    "resnet18": (tv_resnet.BasicBlock, [2, 2, 2, 2]),
    "resnet34": (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    "resnet50": (tv_resnet.Bottleneck, [3, 4, 6, 3]),
    "resnet101": (tv_resnet.Bottleneck, [3, 4, 23, 3]),
    "resnet152": (tv_resnet.Bottleneck, [3, 8, 36, 3]),
}


@MODELS.register("resnet", "residual network (torchvision's ResNet) with a size-aware stem")
def resnet(
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    variant: str = "resnet18",
    stem: str = "auto",
) -> tv_resnet.ResNet:
    if variant not in VARIANTS:
        raise unknown_choice("resnet variant", variant, VARIANTS)
    block, layers = VARIANTS[variant]
    model = tv_resnet.ResNet(block, layers, num_classes=num_classes)
    if resolve_stem(stem, image_size) == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model
