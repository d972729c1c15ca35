"""AlexNet on torchvision's implementation (ReLU, dropout in the classifier).

The ``cifar`` stem replaces the 11x11 stride-4 conv by a 3x3 stride-1 conv, skips the
max-pools that would shrink the map below 1x1 and sizes the first fully connected layer
for the actual feature map (at most 6x6, torchvision's), so 8x8 and 32x32 inputs keep
their resolution. The ``imagenet`` stem with 3 channels is exactly torchvision's AlexNet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgcls.config.options.models import AlexnetOptions, Stem
from imgcls.models.adapt import build_on_meta, conv_like, fit_pools, relu_he_init, small_head
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

if TYPE_CHECKING:  # torchvision (1.5 s to import) waits until one of these is built
    from torchvision.models.alexnet import AlexNet


@register_family("alexnet", AlexnetOptions)
def alexnet(
    options: AlexnetOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> AlexNet:
    """torchvision's AlexNet, its stem fitted to the input."""
    from torchvision.models.alexnet import alexnet as tv_alexnet

    dropout = options.dropout
    small = resolve_stem(options.stem, image_size) is Stem.cifar

    def build() -> AlexNet:
        model = tv_alexnet(weights=None, num_classes=num_classes, dropout=dropout)
        first = model.features[0]
        if small:
            model.features[0] = conv_like(first, in_channels, kernel_size=3, stride=1, padding=1)
        elif in_channels != 3:
            model.features[0] = conv_like(first, in_channels)
        size = fit_pools(model.features, image_size)
        if small:
            small_head(model, size, limit=6, fc_index=1)
        return model

    model = build_on_meta(build, relu_he_init)
    if options.pretrained:
        load_pretrained(model, options.variant)
    return model
