"""Layer surgery shared by the families: input channels, small-image stems, pool skipping.

torchvision's models assume 3x224x224 inputs. These helpers change only what an input of
another size or channel count needs, so the ``imagenet`` stem with 3 channels stays exactly
torchvision's architecture.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from imgcls.base.errors import UserError


def conv_like(
    conv: nn.Conv2d,
    in_channels: int | None = None,
    kernel_size: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
) -> nn.Conv2d:
    """A fresh conv with ``conv``'s settings except the ones given (He init, as torchvision)."""
    new = nn.Conv2d(
        in_channels if in_channels is not None else conv.in_channels,
        conv.out_channels,
        kernel_size if kernel_size is not None else conv.kernel_size,
        stride=stride if stride is not None else conv.stride,
        padding=padding if padding is not None else conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def fit_pools(features: nn.Sequential, size: tuple[int, int]) -> tuple[int, int]:
    """Replace pools that would shrink the map below 1x1 by Identity; return the final size.

    Walks ``features`` (recursing into nested Sequentials) computing each map size from the
    conv and pool settings; other modules keep the size (dense blocks, norms, activations).
    """
    h, w = size
    for name, module in list(features.named_children()):
        if isinstance(module, nn.Sequential):
            h, w = fit_pools(module, (h, w))
        elif isinstance(module, nn.Conv2d):
            kh, kw = _pair(module.kernel_size)
            sh, sw = _pair(module.stride)
            ph, pw = _pair(module.padding)
            dh, dw = _pair(module.dilation)
            h, w = _out(h, kh, sh, ph, dh), _out(w, kw, sw, pw, dw)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            kh, kw = _pair(module.kernel_size)
            sh, sw = _pair(module.stride or module.kernel_size)
            ph, pw = _pair(module.padding)
            if h + 2 * ph < kh or w + 2 * pw < kw:
                setattr(features, name, nn.Identity())
            else:
                h, w = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
        if h < 1 or w < 1:
            raise UserError(f"the input of {size[0]}x{size[1]} pixels is too small for this model")
    return h, w


def small_head(
    model: nn.Module,
    size: tuple[int, int],
    limit: int,
    fc_index: int,
) -> None:
    """Size ``model.classifier[fc_index]`` for the feature map (at most ``limit`` square).

    For AlexNet and VGG, whose adaptive pool otherwise blows a 1x1 map up to 6x6 or 7x7
    copies of itself and feeds them to a huge fully connected layer.
    """
    h, w = min(size[0], limit), min(size[1], limit)
    model.avgpool = nn.AdaptiveAvgPool2d((h, w))
    fc: nn.Linear = model.classifier[fc_index]
    channels = fc.in_features // (limit * limit)
    model.classifier[fc_index] = nn.Linear(channels * h * w, fc.out_features)


def build_on_meta(
    build: Callable[[], nn.Module], init: Callable[[nn.Module], None] | None = None
) -> nn.Module:
    """Build on the meta device, then allocate and initialise on the default device.

    torchvision's AlexNet and VGG create (and initialise) a 25088x4096 layer that a small
    input replaces at once; building on meta skips that work (seconds for VGG). Every layer
    is reset to PyTorch's default init, then ``init`` applies the family's own.
    """
    device = torch.empty(0).device
    with torch.device("meta"):
        model = build()
    if device.type == "meta":
        return model
    model.to_empty(device=device)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if init is not None:
        init(model)
    return model


def he_init_convs(model: nn.Module) -> None:
    """He initialisation of every conv (normal, fan_out, ReLU), biases zero, as torchvision's
    ResNet and VGG do; other layers keep PyTorch's defaults (batch norm: weight 1, bias 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def relu_he_init(model: nn.Module) -> None:
    """He initialisation of every conv and linear layer, biases zero.

    Plain ReLU stacks without batch norm (AlexNet and SimpleCNN on small inputs) barely leave
    chance under SGD with PyTorch's default initialisation; with this they train.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
