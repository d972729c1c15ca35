"""The small-image ResNets: networks designed for 32x32 inputs (CIFAR), not ImageNet.

- ``resnet8/20/32/44/56/110``: He et al. 2016 (section 4.2), 6n+2 layers (resnet8, n=1,
  is the smallest member, used in distillation papers). A 3x3 conv with 16
  channels, three stages of n basic blocks with 16, 32 and 64 channels (stride 2 at the start
  of stages 2 and 3), global average pool, linear head. The shortcut is the paper's option A:
  identity, and where the shape changes a stride-2 subsample with zero channels appended (no
  parameters), so the parameter counts are the published 0.27M ... 1.7M.
- ``wrn16_4``, ``wrn28_10``: Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016). A 3x3 conv
  with 16 channels, three stages of (d - 4) / 6 pre-activation basic blocks (BN-ReLU-conv)
  with 16k, 32k and 64k channels, a 1x1 conv shortcut where the shape changes, final
  BN-ReLU, global average pool, linear head. :class:`WideResNet` takes the paper's dropout
  between the two convs of a block; the registry builds it with 0 (the ``resnet`` family has
  no ``dropout`` option: torchvision's ResNets have no dropout to set).
- ``resnet9``: the DAWNBench ResNet-9 of Myrtle.ai (David Page, "How to train your ResNet"):
  prep conv 64; conv 128, max-pool, residual of two 128 convs; conv 256, max-pool; conv 512,
  max-pool, residual of two 512 convs; global max pool; linear head. Every conv is
  conv3x3-BN-ReLU. Page's version ends in a bias-free linear layer scaled by 0.125; this one
  has a plain linear layer (with bias). A max-pool whose input is under 2 pixels is skipped.
- ``seed_resnet``: the 3-stage ResNet of experiment=seed_demo: a 3x3 conv with 64 channels,
  BN, ReLU, stages of 64/128/256 channels with two basic blocks each (stride 2 at stages 2
  and 3), a 1x1 conv + BN projection shortcut where the shape changes, average pool, fc.

They take any input channels and class count and any input size (global pooling). They
are small-image networks by design: they have no ImageNet stem, so the ``resnet`` family's
``stem`` option does not apply to them, and no weights are published for them. Convs get He
initialisation (normal, fan_out, ReLU), batch norms weight 1 and bias 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from imgcls.models.adapt import fit_pools, he_init_convs


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def make_stages(
    channels: int,
    widths: tuple[int, ...],
    counts: tuple[int, ...],
    block: Callable[[int, int, int], nn.Module],
) -> tuple[nn.Sequential, int]:
    """Stages of ``block(in, out, stride)``, stride 2 at the first block of every stage but the
    first; returns them and the channels they end with."""
    stages = []
    for i, (width, count) in enumerate(zip(widths, counts, strict=True)):
        layers = []
        for j in range(count):
            layers.append(block(channels, width, 2 if i > 0 and j == 0 else 1))
            channels = width
        stages.append(nn.Sequential(*layers))
    return nn.Sequential(*stages), channels


# --- CIFAR ResNets (He et al. 2016, section 4.2) ---------------------------------------------


class PadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut, then ReLU (post-activation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = (
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
                if projection
                else PadShortcut(in_channels, out_channels, stride)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """3x3 stem conv-BN-ReLU, stages of basic blocks, global average pool, linear head.

    ``projection=False`` is the CIFAR ResNets' option A shortcut; ``True`` a 1x1 conv + BN
    (experiment=seed_demo's network).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        num_classes: int,
        in_channels: int = 3,
        projection: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layers, channels = make_stages(
            widths[0], widths, blocks, lambda c, w, s: BasicBlock(c, w, s, projection)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


def cifar_resnet(depth: int, num_classes: int, in_channels: int) -> SmallResNet:
    """ResNet-(6n+2) for CIFAR: 16/32/64 channels, n blocks per stage, option A shortcuts."""
    n = (depth - 2) // 6
    return SmallResNet((16, 32, 64), (n, n, n), num_classes, in_channels)


def seed_resnet(num_classes: int, in_channels: int) -> SmallResNet:
    """The ResNet of experiment=seed_demo: 64/128/256 channels, 2 blocks each, projection shortcuts."""
    return SmallResNet((64, 128, 256), (2, 2, 2), num_classes, in_channels, projection=True)


# --- Wide ResNets (Zagoruyko & Komodakis 2016) ------------------------------------------------


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-(dropout)-conv plus the shortcut (1x1 conv where shape changes).

    As in the authors' code, a projection shortcut takes the pre-activated input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.dropout = dropout
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, self.dropout, self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout > 0 else ""


class WideResNet(nn.Module):
    """WRN-depth-k: widths 16, 16k, 32k, 64k, (depth - 4) / 6 pre-activation blocks a stage."""

    def __init__(
        self,
        depth: int,
        widen: int,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, not {depth}")
        n = (depth - 4) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.layers, channels = make_stages(
            16,
            (16 * widen, 32 * widen, 64 * widen),
            (n, n, n),
            lambda c, w, s: PreActBlock(c, w, s, dropout),
        )
        self.bn = nn.BatchNorm2d(channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.conv1(x))
        x = self.avgpool(F.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


# --- ResNet-9 (Myrtle.ai, DAWNBench) -----------------------------------------------------------


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    """x + body(x); keeps the map size (so :func:`fit_pools` passes over it)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """Page's ResNet-9; max-pools whose input would be under 2 pixels are skipped."""

    def __init__(
        self, num_classes: int, in_channels: int = 3, image_size: tuple[int, int] = (32, 32)
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(in_channels, 64),
            nn.Sequential(conv_bn(64, 128), nn.MaxPool2d(2), Residual(128)),
            nn.Sequential(conv_bn(128, 256), nn.MaxPool2d(2)),
            nn.Sequential(conv_bn(256, 512), nn.MaxPool2d(2), Residual(512)),
        )
        fit_pools(self.features, image_size)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        he_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


# --- the variants -------------------------------------------------------------------------------

Builder = Callable[[int, int, tuple[int, int]], nn.Module]

ARCHITECTURES: dict[str, Builder] = {
    **{
        f"resnet{depth}": (lambda c, i, s, depth=depth: cifar_resnet(depth, c, i))
        for depth in (8, 20, 32, 44, 56, 110)
    },
    "wrn16_4": lambda c, i, s: WideResNet(16, 4, c, i),
    "wrn28_10": lambda c, i, s: WideResNet(28, 10, c, i),
    "resnet9": lambda c, i, s: ResNet9(c, i, s),
    "seed_resnet": lambda c, i, s: seed_resnet(c, i),
}
"""variant -> builder(num_classes, in_channels, image_size)."""


def build_small_resnet(
    variant: str, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> nn.Module:
    return ARCHITECTURES[variant](num_classes, in_channels, image_size)
