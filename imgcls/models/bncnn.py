"""A small VGG-style CNN with batch norm and global average pooling (under 1M parameters).

Built for 28x28 and 32x32 images on a CPU budget: stages of 3x3 conv + batch norm + ReLU,
a 2x2 max-pool between stages (skipped once the map is under 2 pixels, so 8x8 inputs work),
then global pooling (average by default; ``global_pool: max`` for objects that fill one
part of the image, such as a mosaic's tiles) and one linear layer, so nearly every parameter is in the convs
and the classifier costs almost nothing. ``imgcls train experiment=fmnist_bncnn`` is its
Fashion-MNIST recipe (docs/results/fashion-mnist.md).
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.config.options.models import BnCnnOptions, GlobalPool
from imgcls.registry import MODELS


class _GlobalPooling(nn.Module):
    """The last feature map to one value per channel: its mean, its maximum, or both."""

    def __init__(self, pool: GlobalPool) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is GlobalPool.avg:
            return x.mean(dim=(2, 3), keepdim=True)
        if self.pool is GlobalPool.max:
            return x.amax(dim=(2, 3), keepdim=True)
        return torch.cat([x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)], 1)


@MODELS.register("bncnn", BnCnnOptions)
class BNCNN(nn.Module):
    """``widths[i]`` channels in stage i, ``depths[i]`` convs in it."""

    def __init__(
        self,
        options: BnCnnOptions,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        widths, depths = list(options.widths), list(options.depths)
        layers: list[nn.Module] = []
        channels, size = in_channels, min(image_size)
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            if stage > 0 and size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            for _ in range(depth):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        pool = GlobalPool(options.global_pool)
        self.features = nn.Sequential(*layers, _GlobalPooling(pool), nn.Flatten())
        features = channels * (2 if pool is GlobalPool.avgmax else 1)
        self.classifier = nn.Sequential(
            nn.Dropout(options.dropout), nn.Linear(features, num_classes)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.features(x))
