"""VGG 11/13/16/19, with and without batch norm, on torchvision's implementation.

The ``cifar`` stem skips the max-pools that would shrink the map below 1x1 (an 8x8 digit
keeps 3 of the 5) and sizes the first fully connected layer for the actual feature map (at
most 7x7, torchvision's). VGG has no strided stem conv, so nothing else changes. The
``imagenet`` stem with 3 channels is exactly torchvision's VGG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from imgcls.config.options.models import Stem, VggOptions
from imgcls.models.adapt import build_on_meta, conv_like, fit_pools, he_init_convs, small_head
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.models.variants import register_family

if TYPE_CHECKING:  # torchvision (1.5 s to import) waits until one of these is built
    from torchvision.models import vgg as tv_vgg


def vgg_init(model: nn.Module) -> None:
    """torchvision's VGG initialisation (He for convs, N(0, 0.01) for linear layers)."""
    he_init_convs(model)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


@register_family("vgg", VggOptions)
def vgg(
    options: VggOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> tv_vgg.VGG:
    """torchvision's VGG of ``options.variant``, its pools and head fitted to the input."""
    from torchvision.models import vgg as tv_vgg

    variant, dropout = options.variant, options.dropout
    small = resolve_stem(options.stem, image_size) is Stem.cifar

    def build() -> tv_vgg.VGG:
        model = getattr(tv_vgg, variant)(weights=None, num_classes=num_classes, dropout=dropout)
        if in_channels != 3:
            model.features[0] = conv_like(model.features[0], in_channels)
        size = fit_pools(model.features, image_size)
        if small:
            small_head(model, size, limit=7, fc_index=0)
        return model

    model = build_on_meta(build, vgg_init)
    if options.pretrained:
        load_pretrained(model, variant)
    return model
