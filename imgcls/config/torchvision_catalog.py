"""torchvision's classification models, torch-free: the names ``model=torchvision`` builds and
the smallest input each accepts.

``imgcls list`` and the models' options read these without importing torch; a test checks
the names against ``torchvision.models.list_models(module=torchvision.models)`` and each
smallest input against a forward pass on the meta device (one pixel less must fail).
"""

from __future__ import annotations

TORCHVISION_MODELS: tuple[str, ...] = (
    "alexnet",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_16gf",
    "regnet_x_1_6gf",
    "regnet_x_32gf",
    "regnet_x_3_2gf",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_8gf",
    "regnet_y_128gf",
    "regnet_y_16gf",
    "regnet_y_1_6gf",
    "regnet_y_32gf",
    "regnet_y_3_2gf",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_8gf",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "swin_b",
    "swin_s",
    "swin_t",
    "swin_v2_b",
    "swin_v2_s",
    "swin_v2_t",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_b_32",
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "wide_resnet101_2",
    "wide_resnet50_2",
)

DEFAULT_TORCHVISION_MODEL = "mobilenet_v3_small"
"""What ``model=torchvision`` builds while ``model.name`` is left at ``torchvision``: small,
any input size, exports to ONNX."""

# The smallest square input (pixels per side) of the models whose pools or fixed kernels
# refuse smaller ones; every other convnet takes any size down to 1x1 (its pools adapt).
# The models an imgcls family wraps (AlexNet, VGG, DenseNet) fit their pools themselves.
SMALLEST_SIDE: dict[str, int] = {
    "convnext_base": 32,
    "convnext_large": 32,
    "convnext_small": 32,
    "convnext_tiny": 32,
    "googlenet": 15,
    "inception_v3": 75,
    "squeezenet1_0": 21,
    "squeezenet1_1": 17,
    "swin_b": 4,
    "swin_s": 4,
    "swin_t": 4,
    "swin_v2_b": 4,
    "swin_v2_s": 4,
    "swin_v2_t": 4,
}

VIT_PATCH: dict[str, int] = {
    "vit_b_16": 16,
    "vit_b_32": 32,
    "vit_h_14": 14,
    "vit_l_16": 16,
    "vit_l_32": 32,
}
"""The Vision Transformers' own patch size; the image is cut into patches of this side (or
of ``model.patch_size``), so its sides must be equal and a multiple of it."""

MAXVIT_MULTIPLE = 224

SMALL_STEM_PREFIXES = (
    "mobilenet_",
    "mnasnet",
    "shufflenet_v2_",
    "regnet_",
    "resnext",
    "wide_resnet",
    "efficientnet_v2_",
)
"""The convnets whose stem ``model.stem=cifar`` adapts to small images (a strided first
convolution, then perhaps a max-pool); the others have a patch embedding (ConvNeXt, Swin,
ViT: ``model.patch_size``), windows (MaxViT) or several early reductions (GoogLeNet,
Inception, SqueezeNet), and keep torchvision's stem."""


def has_small_stem(name: str) -> bool:
    """Whether ``model.stem=cifar`` applies to torchvision's ``name``."""
    return name.startswith(SMALL_STEM_PREFIXES)


"""MaxViT-T's sides must be multiples of 224: its four stages (after a stride-2 stem) each
halve the map, and each map must split into 7x7 windows."""


def torchvision_input_rule(name: str, size: tuple[int, int], patch_size: int | None) -> str | None:
    """Why ``name`` cannot take an input of ``size`` (H, W), in words; None if it can."""
    h, w = size
    if name in VIT_PATCH:
        patch = patch_size or VIT_PATCH[name]
        if h != w or h % patch:
            return (
                f"{name} takes square inputs whose side is a multiple of its patch size "
                f"{patch} (smallest {patch}x{patch}); got {h}x{w}: set model.patch_size to a "
                "divisor of the side, or resize the images"
            )
        return None
    if name == "maxvit_t":
        if h % MAXVIT_MULTIPLE or w % MAXVIT_MULTIPLE:
            return (
                f"maxvit_t takes inputs whose sides are multiples of {MAXVIT_MULTIPLE} "
                f"(smallest {MAXVIT_MULTIPLE}x{MAXVIT_MULTIPLE}); got {h}x{w}: resize the images"
            )
        return None
    side = SMALLEST_SIDE.get(name, 1)
    if min(h, w) < side:
        return f"{name}'s smallest input is {side}x{side} pixels; got {h}x{w}: resize the images"
    return None
