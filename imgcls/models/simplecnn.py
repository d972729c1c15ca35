"""SimpleCNN (experiment=seed_demo): three blocks of two 3x3 convs, then a dropout MLP."""

from __future__ import annotations

from torch import nn

from imgcls.config.options.models import SimpleCnnOptions
from imgcls.models.adapt import relu_he_init
from imgcls.registry import MODELS


@MODELS.register("simplecnn", SimpleCnnOptions)
class SimpleCNN(nn.Module):
    """Conv blocks halve the image while it is at least 2 pixels, so 8x8 inputs work too."""

    def __init__(
        self,
        options: SimpleCnnOptions,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        widths, hidden, dropout = options.widths, options.hidden, options.dropout
        layers: list[nn.Module] = []
        channels, size = in_channels, min(image_size)
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            channels = width
        pooled = min(size, 4)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pooled))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * pooled * pooled, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        relu_he_init(self)

    def forward(self, x):
        return self.classifier(self.features(x))
