"""The model zoo: every variant on small and large inputs, torchvision parity, options."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from imgcls.app import build
from imgcls.app.validation import validate
from imgcls.base.errors import UserError
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.compose import compose
from imgcls.models.facts import count_flops, count_parameters
from imgcls.models.overview import fact_names
from imgcls.registry import MODELS

# Every buildable architecture once: each variant, and simplecnn (a family without variants).
# (fact_names() lists seed_resnet twice, as a resnet variant and as a small ResNet.)
ARCHITECTURES = list(dict.fromkeys(fact_names()))
# The largest variants take seconds to build and run on 3x32x32: checked on 1x8x8 only.
LARGEST = {"resnet101", "resnet152", "densenet161", "densenet201"} | {
    f"efficientnet_b{i}" for i in (4, 5, 6, 7)
}
CASES = [(n, (1, 8, 8)) for n in ARCHITECTURES] + [
    (n, (3, 32, 32)) for n in ARCHITECTURES if n not in LARGEST
]
TORCHVISION = [n for n, v in VARIANTS.items() if v.pretrained]  # variants torchvision has


def make(name: str, shape: tuple[int, int, int], num_classes: int = 5, **options) -> nn.Module:
    c, h, w = shape
    return MODELS.build(name, options, num_classes=num_classes, in_channels=c, image_size=(h, w))


def test_registry_holds_every_family_and_variant():
    names = set(MODELS.names())
    assert set(FAMILIES) <= names and set(VARIANTS) <= names and "simplecnn" in names
    assert {"vgg11", "vgg19_bn", "resnet50", "densenet_bc", "efficientnet_b7", "lenet5"} <= names


@pytest.mark.parametrize(
    ("name", "shape"), CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES]
)
def test_forward_and_backward(name, shape):
    """Every architecture, the small ResNets of test_small_resnets included (batch 2: wrn28_10
    is 10 GFLOPs a 32x32 image), trains a step: finite logits and a finite gradient for every
    parameter that trains."""
    torch.manual_seed(0)
    model = make(name, shape).train()
    images = torch.randn(2, *shape)
    logits = model(images)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 4])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # airbench freezes some
    assert all(g is not None for g in grads), "a parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)


def meta_forward_backward(name: str, shape: tuple[int, int, int], **options) -> torch.Size:
    """Shapes and autograd on the meta device: no memory and no arithmetic."""
    with torch.device("meta"):
        model = make(name, shape, num_classes=7, **options)
        logits = model(torch.zeros(2, *shape))
        logits.sum().backward()
    return logits.shape


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 224, 224)], ids=["1x28x28", "3x224x224"])
def test_every_variant_fits_mnist_and_imagenet_inputs(shape):
    """Forward only (on the meta device): that every variant takes these inputs is the point;
    every architecture's backward pass is test_forward_and_backward's (half of this test's
    time was autograd on meta tensors)."""
    for name in ARCHITECTURES:
        with torch.device("meta"):
            model = make(name, shape, num_classes=7)
            assert model(torch.zeros(2, *shape)).shape == (2, 7), name


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 224, 224), (3, 9, 13)], ids=str)
def test_any_stem_fits_any_input(family, stem, shape):
    assert meta_forward_backward(family, shape, stem=stem) == (2, 7)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet18", 11_689_512),
        ("resnet50", 25_557_032),
        ("vgg16", 138_357_544),
        ("densenet121", 7_978_856),
        ("efficientnet_b0", 5_288_548),
        ("alexnet", 61_100_840),
    ],
)
def test_parameter_counts_equal_torchvision(name, expected):
    with torch.device("meta"):
        model = make(name, (3, 224, 224), num_classes=1000, stem="imagenet")
    assert count_parameters(model) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION)
def test_imagenet_stem_is_exactly_torchvision(name):
    with torch.device("meta"):
        ours = make(name, (3, 224, 224), num_classes=1000, stem="imagenet")
        theirs = torchvision.models.get_model(name)
    assert repr(ours) == repr(theirs)
    assert count_parameters(ours) == count_parameters(theirs)


def test_family_with_variant_equals_the_variant_by_name():
    with torch.device("meta"):
        by_family = make("resnet", (3, 32, 32), variant="resnet50")
        by_name = make("resnet50", (3, 32, 32))
    assert repr(by_family) == repr(by_name)
    with pytest.raises(UserError, match="model.variant=resnet18 is invalid: model 'resnet50'"):
        MODELS.options("resnet50", {"variant": "resnet18"})


def test_lenet5_is_the_paper_network_on_32x32():
    model = make("lenet5", (1, 32, 32), num_classes=10, stem="imagenet")
    assert count_parameters(model) == 61_706  # LeNet-5 with full C3 connectivity
    assert model.classifier[1].in_features == 16 * 5 * 5
    assert any(isinstance(m, nn.Tanh) for m in model.modules())
    assert any(isinstance(m, nn.AvgPool2d) for m in model.modules())
    modern = make("lenet5_relu", (1, 28, 28), num_classes=10)  # padded C1: MNIST's LeNet
    assert modern.classifier[1].in_features == 16 * 5 * 5
    assert any(isinstance(m, nn.MaxPool2d) for m in modern.modules())
    assert not any(isinstance(m, nn.Tanh) for m in modern.modules())


def test_small_stems_keep_the_resolution():
    vgg = make("vgg11_bn", (1, 8, 8))  # 8 -> 4 -> 2 -> 1: two of the five pools are skipped
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.features) == 3
    assert vgg.classifier[0].in_features == 512
    alexnet = make("alexnet", (3, 32, 32))
    assert alexnet.features[0].stride == (1, 1)
    assert alexnet.classifier[1].in_features == 256 * 3 * 3
    resnet = make("resnet18", (3, 32, 32))
    assert resnet.conv1.kernel_size == (3, 3) and isinstance(resnet.maxpool, nn.Identity)
    effnet = make("efficientnet_b0", (3, 32, 32)).eval()
    assert effnet.features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)
    densenet = make("densenet121", (3, 32, 32)).eval()
    assert densenet.features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)
    imagenet = make("resnet18", (3, 64, 64))  # stem=auto: 64 pixels and more -> standard stem
    assert imagenet.conv1.kernel_size == (7, 7)


def test_flops_grow_with_the_variant_and_the_input():
    with torch.device("meta"):
        b0, b3 = (make(n, (3, 224, 224)) for n in ("efficientnet_b0", "efficientnet_b3"))
        flops_b0 = count_flops(b0, (3, 224, 224), device="meta")
        assert count_flops(b3, (3, 224, 224), device="meta") > flops_b0 > 0
        small = count_flops(make("efficientnet_b0", (3, 32, 32)), (3, 32, 32), device="meta")
    assert 0 < small < flops_b0


def test_efficientnet_catalogue_follows_compound_scaling():
    for phi in range(8):
        scaling = VARIANTS[f"efficientnet_b{phi}"].scaling
        assert scaling.phi == phi
        depth, width, resolution = scaling.compound
        assert depth == pytest.approx(1.2**phi) and width == pytest.approx(1.1**phi)
        assert resolution == pytest.approx(1.15**phi)
    assert VARIANTS["efficientnet_b7"].scaling.resolution == 600


@pytest.mark.parametrize(
    ("name", "dropout", "expected"),
    [
        ("alexnet", 0.3, 0.3),
        ("vgg11", 0.1, 0.1),
        ("efficientnet_b0", None, 0.2),
        ("efficientnet_b7", None, 0.5),
        ("efficientnet_b1", 0.35, 0.35),
    ],
)
def test_dropout_option(name, dropout, expected):
    with torch.device("meta"):
        model = make(name, (3, 32, 32), dropout=dropout)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {expected}


def test_densenet_dropout_and_bc_options():
    model = make(
        "densenet", (3, 32, 32), variant="densenet_bc", growth_rate=6, depth=22, dropout=0.2
    )
    layers = [m for m in model.modules() if type(m).__name__ == "_DenseLayer"]
    assert len(layers) == 9 and all(m.drop_rate == 0.2 for m in layers)  # (22 - 4) / 6 per block
    assert model.features.conv0.out_channels == 12  # 2 x growth rate


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=vgg", "model.variant=vgg12"], r"unknown vgg variant 'vgg12' — did you mean"),
        (
            ["model=resnet", "model.stem=tiny"],
            r"unknown model.stem 'tiny'; available: auto, cifar, imagenet",
        ),
        (["model=alexnet", "model.dropout=1.0"], r"model.dropout=1 is invalid"),
        (["model=densenet", "model.depth=41"], r"model.depth=41 is invalid: DenseNet-BC needs"),
        (
            ["model=densenet", "model.variant=densenet121", "model.depth=40"],
            r"model.depth=40 applies only to densenet_bc",
        ),
        (["model=densenet", "model.pretrained=true"], r"no ImageNet weights for densenet_bc"),
    ],
)
def test_bad_model_options_are_one_clear_line(overrides, message):
    data = ["dataset=synthetic", "dataset.num_samples=60", "dataset.image_size=8"]
    with pytest.raises(UserError, match=message) as info:
        cfg = compose([*overrides, *data])  # types and choices (model.stem) fail here,
        validate(cfg)  # the options' rules (model.dropout) here, the rest when built
        build.build_model(cfg, build.build_dataset(cfg))
    assert "\n" not in str(info.value)


def test_lenet_has_no_pretrained_or_dropout_keys():
    with pytest.raises(UserError, match="unknown config key 'model.pretrained'"):
        compose(["model=lenet", "model.pretrained=true"])
