"""Any torchvision classifier (``model=torchvision model.variant=<builder>``), fitted to the data.

torchvision's builders take ``num_classes``, so the head is sized for the dataset when it is
built. Other channel counts replace the first convolution (the patch embedding of ViT and
Swin); with pretrained weights the RGB filters are summed (one channel) or repeated and
scaled by 3/C (C channels), as timm does, so the first layer's response keeps its scale.
Small inputs: Vision Transformers take the image size (and ``model.patch_size``); models that
cannot take the input are refused in one line naming the smallest one they accept
(:mod:`imgcls.config.torchvision_catalog`). GoogLeNet and Inception v3 are built without
their auxiliary heads (the training loop expects one output).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.config.options.models import Stem, TorchvisionOptions, torchvision_only_models
from imgcls.config.torchvision_catalog import VIT_PATCH, has_small_stem, torchvision_input_rule
from imgcls.models.adapt import conv_like
from imgcls.models.drop_path import set_drop_path
from imgcls.models.pretrained import load_pretrained
from imgcls.models.stems import resolve_stem
from imgcls.registry import MODELS

AUXILIARY_HEADS = ("googlenet", "inception_v3")


def first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first convolution in module order, with its parent and attribute name."""
    for parent in model.modules():
        for attribute, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, attribute, child
    raise UserError(f"{type(model).__name__} has no convolution to adapt to other channels")


def rgb_to(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Filters over 3 (RGB) input channels turned into filters over ``in_channels``."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def adapt_input_channels(model: nn.Module, in_channels: int, keep_weights: bool) -> None:
    """Give ``model``'s first convolution ``in_channels`` inputs (its weights converted when
    ``keep_weights``, else freshly initialised)."""
    parent, attribute, conv = first_conv(model)
    if conv.in_channels == in_channels:
        return
    new = conv_like(conv, in_channels)
    if keep_weights:
        with torch.no_grad():
            new.weight.copy_(rgb_to(conv.weight, in_channels))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    setattr(parent, attribute, new)


def small_image_stem(model: nn.Module) -> None:
    """``stem=cifar``: the first convolution moves one pixel at a time and a max-pool between it
    and the next convolution is dropped, so a 28x28 image is not 7x7 after the stem (the
    families' small-image stems do the same). The weights keep their shapes: pretrained
    filters still load."""
    _, _, conv = first_conv(model)
    conv.stride = (1, 1)
    seen_first = False
    for name, module in model.named_modules():  # in the order of the forward pass
        if module is conv:
            seen_first = True
        elif seen_first and isinstance(module, nn.Conv2d):
            return
        elif seen_first and isinstance(module, nn.MaxPool2d):
            parent, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(parent), attribute, nn.Identity())
            return


@contextlib.contextmanager
def regnet_widths_on_cpu() -> Iterator[None]:
    """RegNet's builders compute their widths with tensors and read them back (``.tolist()``),
    which fails on the meta device (``imgcls list models --input``, the tests); only that
    arithmetic runs on the CPU, the layers still go where the caller put them."""
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params

    def on_cpu(*args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return original(*args, **kwargs)

    regnet.BlockParams.from_init_params = on_cpu  # type: ignore[method-assign]
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original  # type: ignore[method-assign]


def vit_position_resize(model: nn.Module) -> Callable[[dict], dict]:
    """Pretrained ViT position embeddings (a 14x14 grid at 224 pixels, patch 16) resized
    bicubically to ``model``'s grid, so a ViT on smaller images keeps them (torchvision's
    ``interpolate_embeddings``); the class token's embedding is kept as it is."""
    from torchvision.models.vision_transformer import interpolate_embeddings

    def resize(state: dict) -> dict:
        return dict(interpolate_embeddings(model.image_size, model.patch_size, state))

    return resize


def _vision_transformer(
    name: str, num_classes: int, image_size: tuple[int, int], patch_size: int | None
) -> nn.Module:
    from torchvision.models import vision_transformer as tv_vit

    if patch_size is None or patch_size == VIT_PATCH[name]:
        return tv_vit.__dict__[name](
            weights=None, num_classes=num_classes, image_size=image_size[0]
        )
    # the builder fixes the patch; the rest of the architecture is the named model's
    reference = tv_vit.__dict__[name](weights=None)
    return tv_vit.VisionTransformer(
        image_size=image_size[0],
        patch_size=patch_size,
        num_layers=len(reference.encoder.layers),
        num_heads=reference.encoder.layers[0].num_heads,
        hidden_dim=reference.hidden_dim,
        mlp_dim=reference.mlp_dim,
        num_classes=num_classes,
    )


def _build(name: str, num_classes: int, image_size: tuple[int, int], patch_size: int | None):
    from torchvision import models as tv_models

    if name in VIT_PATCH:
        return _vision_transformer(name, num_classes, image_size, patch_size)
    extra: dict[str, Any] = {}
    if name in AUXILIARY_HEADS:
        extra = {"aux_logits": False, "init_weights": True}
    if name == "maxvit_t":
        extra = {"input_size": image_size}
    with regnet_widths_on_cpu():
        return tv_models.get_model(name, weights=None, num_classes=num_classes, **extra)


@MODELS.register("torchvision", TorchvisionOptions)
def torchvision_model(
    options: TorchvisionOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> nn.Module:
    """torchvision's ``options.variant`` for ``num_classes`` classes, ``in_channels``
    channels and images of ``image_size``; ImageNet weights from local files if asked."""
    name = options.variant
    refusal = torchvision_input_rule(name, tuple(image_size), options.patch_size)
    if refusal:
        raise UserError(f"model {refusal}")
    model = _build(name, num_classes, tuple(image_size), options.patch_size)
    if options.pretrained:
        load_pretrained(model, name, vit_position_resize(model) if name in VIT_PATCH else None)
    adapt_input_channels(model, in_channels, keep_weights=options.pretrained)
    if has_small_stem(name) and resolve_stem(options.stem, tuple(image_size)) is Stem.cifar:
        small_image_stem(model)
    if options.bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = options.bn_momentum
    if options.drop_path_rate is not None:
        set_drop_path(model, options.drop_path_rate, name)
    return model


for _name in torchvision_only_models():  # as a family's variants are: list models --input
    MODELS.register(_name, TorchvisionOptions)(torchvision_model)
