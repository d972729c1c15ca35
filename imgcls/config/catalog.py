"""The model zoo's catalogue: families, variants, descriptions and scaling coefficients.

Torch-free on purpose: ``imgcls list models`` reads it and must answer at once; the family
modules and the models' options (which check ``variant``) read it too, so names and
descriptions live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgcls.base.errors import unknown_choice

# EfficientNet's compound-scaling base (Tan & Le, 2019): depth α^φ, width β^φ, resolution γ^φ.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class Scaling:
    """An EfficientNet variant: φ, and the multipliers torchvision actually uses."""

    phi: int
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float

    @property
    def compound(self) -> tuple[float, float, float]:
        """(depth α^φ, width β^φ, resolution γ^φ) from the compound-scaling rule."""
        return ALPHA**self.phi, BETA**self.phi, GAMMA**self.phi

    def describe(self) -> str:
        """The compound-scaling rule of this EfficientNet variant, in words."""
        depth, width, resolution = self.compound
        return (
            f"φ={self.phi}: rule depth α^φ={depth:.2f} width β^φ={width:.2f} "
            f"resolution γ^φ={resolution:.2f} (~{224 * resolution:.0f} px); torchvision depth {self.depth_mult:g} "
            f"width {self.width_mult:g}, native {self.resolution} px"
        )


@dataclass(frozen=True)
class Variant:
    """One selectable variant of a model family (``model.variant=``), with what ``imgcls list
    models`` says of it.
    """

    name: str
    family: str
    description: str
    pretrained: bool = True  # torchvision publishes ImageNet weights for it
    scaling: Scaling | None = None

    def describe(self) -> str:
        """The description, with the scaling rule for EfficientNet variants."""
        return (
            f"{self.description}; {self.scaling.describe()}" if self.scaling else self.description
        )


@dataclass(frozen=True)
class Family:
    """A model family's variants and its default one; the torch-free list that options and ``imgcls
    list`` check names against.
    """

    name: str
    default: str
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        """The variant ``name``; an unknown one is a UserError with a did-you-mean."""
        for v in self.variants:
            if v.name == name:
                return v
        raise unknown_choice(f"{self.name} variant", name, self.names())

    def names(self) -> list[str]:
        """The variants' names, in catalogue order."""
        return [v.name for v in self.variants]


def _family(name: str, default: str, *variants: tuple) -> Family:
    return Family(name, default, tuple(Variant(v[0], name, *v[1:]) for v in variants))


_VGG_DEPTHS = {
    "vgg11": "8 conv + 3 fc (config A)",
    "vgg13": "10 conv + 3 fc (config B)",
    "vgg16": "13 conv + 3 fc (config D)",
    "vgg19": "16 conv + 3 fc (config E)",
}
_EFFICIENTNET = [  # φ, width, depth, resolution, dropout: torchvision's efficientnet_b0..b7
    (0, 1.0, 1.0, 224, 0.2),
    (1, 1.0, 1.1, 240, 0.2),
    (2, 1.1, 1.2, 260, 0.3),
    (3, 1.2, 1.4, 300, 0.3),
    (4, 1.4, 1.8, 380, 0.4),
    (5, 1.6, 2.2, 456, 0.4),
    (6, 1.8, 2.6, 528, 0.5),
    (7, 2.0, 3.1, 600, 0.5),
]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _family(
            "lenet",
            "lenet5",
            ("lenet5", "LeNet-5 (LeCun et al. 1998): tanh, average pooling", False),
            ("lenet5_relu", "LeNet-5 layout with ReLU and max pooling (the modern option)", False),
        ),
        _family("alexnet", "alexnet", ("alexnet", "AlexNet: 5 conv + 3 fc, ReLU and dropout")),
        _family(
            "vgg",
            "vgg11_bn",
            *[(n, f"VGG {d}") for n, d in _VGG_DEPTHS.items()],
            *[(f"{n}_bn", f"VGG {d} with batch norm") for n, d in _VGG_DEPTHS.items()],
        ),
        _family(
            "resnet",
            "resnet18",
            ("resnet18", "ResNet-18: basic blocks [2, 2, 2, 2]"),
            ("resnet34", "ResNet-34: basic blocks [3, 4, 6, 3]"),
            ("resnet50", "ResNet-50: bottleneck blocks [3, 4, 6, 3]"),
            ("resnet101", "ResNet-101: bottleneck blocks [3, 4, 23, 3]"),
            ("resnet152", "ResNet-152: bottleneck blocks [3, 8, 36, 3]"),
            *[
                (
                    f"resnet{d}",
                    f"CIFAR ResNet-{d} (He et al. 2016): 3 stages of {(d - 2) // 6} "
                    "basic blocks, 16/32/64 channels, zero-pad shortcuts; small images",
                    False,
                )
                for d in (8, 20, 32, 44, 56, 110)
            ],
            (
                "wrn16_4",
                "Wide ResNet WRN-16-4: depth 16, width x4 (64/128/256 channels), "
                "2 pre-activation blocks per stage; small images",
                False,
            ),
            (
                "wrn28_10",
                "Wide ResNet WRN-28-10: depth 28, width x10 (160/320/640 channels), "
                "4 pre-activation blocks per stage; small images",
                False,
            ),
            (
                "resnet9",
                "ResNet-9 (Myrtle.ai DAWNBench): 8 conv layers 64-512 channels, "
                "2 residual blocks, max pools; small images",
                False,
            ),
            (
                "seed_resnet",
                "the ResNet of experiment=seed_demo: 3 stages of 2 basic blocks, "
                "64/128/256 channels, 1x1 projection shortcuts; small images",
                False,
            ),
        ),
        _family(
            "densenet",
            "densenet_bc",
            (
                "densenet_bc",
                "DenseNet-BC for small images: 3 dense blocks, configurable "
                "growth_rate (12) and depth (40)",
                False,
            ),
            ("densenet121", "DenseNet-121: growth 32, blocks [6, 12, 24, 16]"),
            ("densenet161", "DenseNet-161: growth 48, blocks [6, 12, 36, 24]"),
            ("densenet169", "DenseNet-169: growth 32, blocks [6, 12, 32, 32]"),
            ("densenet201", "DenseNet-201: growth 32, blocks [6, 12, 48, 32]"),
        ),
        _family(
            "efficientnet",
            "efficientnet_b0",
            *[
                (
                    f"efficientnet_b{phi}",
                    f"EfficientNet-B{phi}",
                    True,
                    Scaling(phi, width, depth, resolution, dropout),
                )
                for phi, width, depth, resolution, dropout in _EFFICIENTNET
            ],
        ),
    )
}

VARIANTS: dict[str, Variant] = {v.name: v for f in FAMILIES.values() for v in f.variants}
