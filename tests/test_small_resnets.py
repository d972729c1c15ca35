"""The small-image ResNets of the resnet family: CIFAR ResNets, Wide ResNets, ResNet-9, seed."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from imgcls import cli
from imgcls.app import build
from imgcls.app.validation import validate
from imgcls.base.errors import UserError
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.compose import compose
from imgcls.models import small_resnets
from imgcls.models.facts import count_parameters
from imgcls.registry import MODELS

SMALL = list(small_resnets.ARCHITECTURES)
CIFAR_DEPTHS = {
    "resnet8": 8,
    "resnet20": 20,
    "resnet32": 32,
    "resnet44": 44,
    "resnet56": 56,
    "resnet110": 110,
}


def make(name: str, shape: tuple[int, int, int], num_classes: int = 10, **options) -> nn.Module:
    c, h, w = shape
    return MODELS.build(name, options, num_classes=num_classes, in_channels=c, image_size=(h, w))


def test_catalog_lists_every_small_resnet_without_weights():
    resnet = FAMILIES["resnet"]
    assert set(SMALL) <= set(resnet.names()) and resnet.default == "resnet18"
    assert not any(VARIANTS[n].pretrained for n in SMALL)
    assert {"resnet20", "wrn28_10", "resnet9", "seed_resnet"} <= set(MODELS.names())


# Published parameter counts (10 classes, 3 input channels; resnet8, not in the paper's
# table, is checked by its layer structure below); resnet9: the architecture as
# described (convs without bias, BN, a 512 -> 10 linear layer with bias).
PUBLISHED = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet44": 0.66e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "wrn16_4": 2.7e6,
    "wrn28_10": 36.5e6,
    "resnet9": 6.57e6,
}


@pytest.mark.parametrize(("name", "published"), PUBLISHED.items())
def test_parameter_counts_match_the_papers(name, published):
    with torch.device("meta"):
        model = make(name, (3, 32, 32))
    assert count_parameters(model) == pytest.approx(published, rel=0.02)


@pytest.mark.parametrize("name", CIFAR_DEPTHS)
def test_cifar_resnets_have_6n_plus_2_layers_and_parameter_free_shortcuts(name):
    with torch.device("meta"):
        model = make(name, (3, 32, 32))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == CIFAR_DEPTHS[name]
    assert all(m.kernel_size == (3, 3) for m in convs)  # option A: no 1x1 projections
    n = (CIFAR_DEPTHS[name] - 2) // 6
    assert [m.out_channels for m in convs] == [16] * (1 + 2 * n) + [32] * 2 * n + [64] * 2 * n
    assert sum(isinstance(m, small_resnets.PadShortcut) for m in model.modules()) == 2


class SeedResBlock(nn.Module):
    """The seed document's ResBlock, its layers as written there (forward left out)."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )


class SeedResNet(nn.Module):
    """The seed document's ResNet, its layers as written there (stages flattened)."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layers = nn.ModuleList(
            [
                SeedResBlock(a, b, s)
                for a, b, s in [
                    (64, 64, 1),
                    (64, 64, 1),
                    (64, 128, 2),
                    (128, 128, 1),
                    (128, 256, 2),
                    (256, 256, 1),
                ]
            ]
        )
        self.fc = nn.Linear(256, num_classes)


def test_seed_resnet_is_the_seed_documents_network():
    ours = make("seed_resnet", (3, 32, 32), num_classes=5)
    theirs = SeedResNet(num_classes=5)
    assert count_parameters(ours) == count_parameters(theirs) == 2_776_389
    shapes = sorted(tuple(p.shape) for p in ours.parameters())
    assert shapes == sorted(tuple(p.shape) for p in theirs.parameters())
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in ours.modules()) == 2


# Forward and backward of every small ResNet on 1x8x8 and 3x32x32 (finite logits, a finite
# gradient for every parameter): tests/test_models.py::test_forward_and_backward, which runs
# every architecture of fact_names(), these included (wrn28_10 alone took 11 s here twice over).


@pytest.mark.parametrize("size", [1, 3, 4, 8])
def test_resnet9_skips_pools_under_two_pixels(size):
    model = make("resnet9", (1, size, size), num_classes=3).eval()
    pools = sum(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert pools == {1: 0, 3: 1, 4: 2, 8: 3}[size]
    assert model(torch.randn(1, 1, size, size)).shape == (1, 3)


def test_he_init_and_batch_norm_init():
    model = make("resnet20", (3, 32, 32))
    conv = model.conv1  # 3 -> 16, 3x3: fan_out = 16 * 9
    assert conv.weight.std().item() == pytest.approx((2 / (16 * 9)) ** 0.5, rel=0.25)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)


def test_stem_is_ignored_but_checked():
    with torch.device("meta"):
        shapes = [repr(make("resnet20", (3, 224, 224), stem=s)) for s in ("imagenet", "cifar")]
    assert shapes[0] == shapes[1]
    with pytest.raises(
        UserError, match="unknown model.stem 'tiny'; available: auto, cifar, imagenet"
    ):
        make("resnet20", (3, 32, 32), stem="tiny")


def test_list_models_shows_the_small_resnets(capsys):
    assert cli.main(["list", "models", "res*"]) == 0
    out = capsys.readouterr().out
    for name in SMALL:
        assert re.search(rf"(^|\s){name}\s", out, re.M), name
    assert cli.main(["list", "models", "wrn*"]) == 0
    out = capsys.readouterr().out
    assert "wrn16_4" in out and "wrn28_10" in out and "WRN-28-10" in out
    assert not re.search(r"^\s*(resnet18|resnet20|resnet9)\s", out, re.M)  # no other rows


def test_list_models_with_input_counts_them(capsys):
    assert cli.main(["list", "models", "wrn*", "--input", "3x32x32"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"wrn16_4\s+\S+\s+2,748,890\s", out)
    assert re.search(r"wrn28_10\s+\S+\s+36,479,194\s", out)


def configured(*overrides: str) -> nn.Module:
    cfg = compose(
        [*overrides, "dataset=synthetic", "dataset.num_samples=60", "dataset.image_size=8"]
    )
    validate(cfg)
    return build.build_model(cfg, build.build_dataset(cfg))


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        (["model=resnet", "model.variant=resnet20"], small_resnets.SmallResNet),
        (["model=resnet", "model.variant=wrn16_4"], small_resnets.WideResNet),
        (["model=resnet", "model.variant=resnet9"], small_resnets.ResNet9),
    ],
)
def test_config_composes_and_builds(overrides, kind):
    model = configured(*overrides)
    assert isinstance(model, kind)
    assert model(torch.randn(2, 3, 8, 8)).shape[0] == 2


def test_variant_name_is_a_model_of_its_own():
    with torch.device("meta"):
        by_name = make("resnet20", (3, 32, 32))
        by_family = make("resnet", (3, 32, 32), variant="resnet20")
    assert repr(by_name) == repr(by_family)
    with pytest.raises(UserError, match="model.variant=resnet32 is invalid: model 'resnet20'"):
        MODELS.options("resnet20", {"variant": "resnet32"})


def test_pretrained_is_one_clear_line_naming_the_variant():
    with pytest.raises(UserError, match=r"no weights are published for resnet20") as info:
        configured("model=resnet", "model.variant=resnet20", "model.pretrained=true")
    assert "\n" not in str(info.value) and "resnet18" in str(info.value)
    with pytest.raises(UserError, match=r"no weights are published for wrn28_10"):
        make("wrn28_10", (3, 32, 32), pretrained=True)


def test_wide_resnet_dropout_and_depth():
    model = small_resnets.WideResNet(10, 1, num_classes=3, dropout=0.3)
    blocks = [m for m in model.modules() if isinstance(m, small_resnets.PreActBlock)]
    assert len(blocks) == 3 and all(b.dropout == 0.3 for b in blocks)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        small_resnets.WideResNet(12, 1, num_classes=3)
