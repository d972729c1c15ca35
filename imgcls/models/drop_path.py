"""Drop-path (stochastic depth) for torchvision's classifiers: ``model.drop_path_rate``.

torchvision's ConvNeXt, Swin (v1, v2), EfficientNetV2 and MaxViT skip each residual branch
with a probability that grows with depth (``torchvision.ops.StochasticDepth``); their
builders fix the deepest block's rate (0.1 to 0.5) and Swin's and MaxViT's refuse another. So
the rate is set after the build: every layer's probability is scaled so that the deepest
reaches ``rate``, keeping the architecture's own growth with depth (linear), as timm's
``drop_path_rate`` does. A model without such layers (ViT, MobileNet, RegNet ...) is refused
in one line.
"""

from __future__ import annotations

from torch import nn

from imgcls.base.errors import UserError


def set_drop_path(model: nn.Module, rate: float, name: str) -> None:
    """Scale every StochasticDepth probability of ``model`` so that the largest is ``rate``."""
    from torchvision.ops import StochasticDepth

    layers = [m for m in model.modules() if isinstance(m, StochasticDepth)]
    deepest = max((layer.p for layer in layers), default=0.0)
    if not layers or deepest <= 0:
        raise UserError(
            f"model.drop_path_rate={rate:g}: torchvision's {name} has no stochastic depth "
            "(it has: convnext_*, swin_*, swin_v2_*, efficientnet_v2_*, maxvit_t); "
            "set model.drop_path_rate=null"
        )
    for layer in layers:
        layer.p = layer.p * rate / deepest
