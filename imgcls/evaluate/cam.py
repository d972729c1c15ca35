"""Grad-CAM (Selvaraju et al., 2017): where in an image a classifier found the class it scored.

For an image, a class c and a convolutional layer with activations A (K maps), the map is
ReLU(sum_k alpha_k A_k), where alpha_k is the spatial mean of d score_c / d A_k; it is then
upsampled (bilinear) to the image's size. A multi-label model is explained for one label the
same way (the score is that label's logit).

The gradient and the weighted sum are captum's (``captum.attr.LayerGradCam``, PyTorch's own
interpretability library, maintained by Meta). It was chosen over pytorch-grad-cam
(``grad-cam``) because it is pure Python and needs nothing the project does not already
install (torch, numpy, matplotlib), where ``grad-cam`` pulls OpenCV (opencv-python-headless,
about 50 MB of native code) and ttach for the same computation. Over a hook of our own it
brings one thing that matters for these models: it evaluates the layer on a clone of its
output, so in-place operations after the layer (DenseNet's ``F.relu(..., inplace=True)``,
torchvision's in-place ReLUs and SiLUs) cannot change the activations it weighs.

Which layer (:func:`find_target_layer`) is one rule for every family: the last module, in the
order the forward pass finishes them, whose output is a feature map (N, C, H, W) larger than
1x1, laid out as the image is (:func:`is_image_map`), and is not the output of an adaptive
(global) pooling layer. That is the last spatial
feature layer before the pooling that feeds the classifier: ``layer4`` of torchvision's
ResNets, ``features`` of VGG, AlexNet, DenseNet and EfficientNet, ``layers`` of the CIFAR
ResNets, ``groups`` of airbench. Where a small input has shrunk the last map to 1x1 (which
shows no place), the deepest map larger than that is used. A model with no such map is
refused by name (:class:`CamUnsupported`).

Not every 4-D tensor is such a map: ConvNeXt's blocks (torchvision's and timm's) run their
layer norm and MLP channels-last, on (N, H, W, C), and a vision transformer's attention
works on (N, heads, tokens, head width). Their last two sizes are not the image's height
and width scaled by one factor, which is how :func:`is_image_map` tells them apart; without
it the rule picked ConvNeXt's last MLP (a "map" 1 pixel high and C wide) and a ViT's
attention. A vision transformer's one map is its patch embedding's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from imgcls.base.errors import UserError

GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


class CamUnsupported(UserError):
    """The model has no feature map a class-activation map could be drawn on."""


@dataclass(frozen=True)
class CamLayer:
    """The layer Grad-CAM weighs: its name in ``model.named_modules()``, the module and the
    size of its feature map (H, W) for the example it was found with."""

    name: str
    module: nn.Module
    size: tuple[int, int]


def is_image_map(size: Sequence[int], image: Sequence[int]) -> bool:
    """Whether a (H, W) pair is the image's (height, width) scaled by one factor, each side
    within a pixel (what strides, padding and rounding leave): a feature map in (N, C, H, W)
    layout. A channels-last (N, H, W, C) tensor's last two sizes are a width and a channel
    count, which one factor does not fit unless the channel count happens to be that width."""
    (height, width), (image_height, image_width) = size, image
    # the factors f with |height - f * image_height| <= 1, and those for the width: overlap?
    low = max((height - 1) / image_height, (width - 1) / image_width)
    high = min((height + 1) / image_height, (width + 1) / image_width)
    return low <= high


def find_target_layer(model: nn.Module, example: Tensor, family: str = "the model") -> CamLayer:
    """The layer Grad-CAM uses for ``model`` (the rule in the module docstring), found by
    running ``example`` (one normalised batch) through it with a hook on every module.

    Raises :class:`CamUnsupported` naming ``family`` when no feature map is larger than 1x1.
    """
    finished: list[tuple[str, nn.Module, object]] = []
    handles = [
        module.register_forward_hook(
            lambda module, inputs, output, name=name: finished.append((name, module, output))
        )
        for name, module in model.named_modules()
        if name  # the model itself: its output is the logits
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    pooled: list[Tensor] = []  # what global pooling returned (and containers passed on)
    chosen: CamLayer | None = None
    for name, module, output in finished:
        if not isinstance(output, Tensor) or output.dim() != 4:
            continue
        if not is_image_map(output.shape[-2:], example.shape[-2:]):
            continue  # channels-last activations, attention scores: not a feature map
        if isinstance(module, GLOBAL_POOLS) or any(output is p for p in pooled):
            pooled.append(output)
            continue
        height, width = output.shape[-2:]
        if height * width > 1:
            chosen = CamLayer(name, module, (int(height), int(width)))
    if chosen is None:
        size = "x".join(str(v) for v in example.shape[-2:])
        raise CamUnsupported(
            f"Grad-CAM needs a feature map larger than 1x1 before the classifier, and "
            f"{family} on {size} images has none"
        )
    return chosen


def grad_cam(
    model: nn.Module,
    layer: nn.Module,
    inputs: Tensor,
    targets: Sequence[int] | Tensor,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Grad-CAM maps (N, H, W), float32, zero or above, of ``inputs`` (normalised N, C, H, W)
    for the class ``targets[i]`` of each image, upsampled bilinearly to ``size`` (default:
    the inputs' own). Not normalised: 0 where no evidence for the class was found.

    Runs with gradients on whatever device ``model`` is on; the model should be in eval mode
    (batch norm with its running statistics, no dropout), as it is for inference.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    target = torch.as_tensor(targets, dtype=torch.long, device=inputs.device)
    with torch.enable_grad():
        maps = LayerGradCam(model, layer).attribute(
            inputs.detach().clone().requires_grad_(True), target=target, relu_attributions=True
        )
    out = size if size is not None else tuple(int(v) for v in inputs.shape[-2:])
    return LayerAttribution.interpolate(maps.detach().float(), out, "bilinear")[:, 0]
