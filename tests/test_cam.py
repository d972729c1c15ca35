"""Grad-CAM, "where the model looked": the map equals a hand computation, every model family
gets one (or a one-line refusal naming it), the panel chooses the right images, and a run
and ``imgcls eval ... cam=true`` write it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PLOTS, TINY
from torch import nn
from torch.nn import functional as F

from imgcls import cli
from imgcls.app.job import train
from imgcls.config.compose import compose
from imgcls.evaluate.cam import CamUnsupported, find_target_layer, grad_cam
from imgcls.evaluate.cam_figure import choose_extremes, plot_cam_panel
from imgcls.registry import MODELS

PNG = b"\x89PNG\r\n\x1a\n"


def tiny_model() -> nn.Sequential:
    """conv 3x3 stride 2 (2 maps) -> ReLU -> global average pool -> linear (3 classes)."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 3),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.linspace(-1.0, 1.0, 18).view(2, 1, 3, 3))
        model[0].bias.copy_(torch.tensor([0.1, -0.2]))
        model[4].weight.copy_(torch.tensor([[1.0, -2.0], [-0.5, 0.5], [3.0, 1.0]]))
        model[4].bias.zero_()
    return model.eval()


def test_grad_cam_equals_the_hand_computation():
    model = tiny_model()
    x = torch.linspace(-1.0, 1.0, 36).view(1, 1, 6, 6).sin().repeat(3, 1, 1, 1)
    x[1] = x[1].flip(-1)
    x[2] = -x[2].transpose(-1, -2)
    classes = [0, 1, 2]
    layer = find_target_layer(model, x[:1])
    assert (layer.name, layer.size) == ("1", (3, 3))  # the ReLU: the last map before the pool
    maps = grad_cam(model, layer.module, x, classes)
    # By hand: score_c = sum_k W[c, k] * mean(A_k) + b_c, so d score_c / d A_k is W[c, k] / 9
    # at every one of the 3x3 positions, and alpha_k (its spatial mean) is W[c, k] / 9.
    conv, fc = model[0], model[4]
    activations = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1).clamp_min(0)
    alpha = fc.weight[classes] / 9.0  # (images, maps)
    weighted = (alpha[:, :, None, None] * activations).sum(1, keepdim=True).clamp_min(0)
    expected = F.interpolate(weighted, size=(6, 6), mode="bilinear")[:, 0]
    assert maps.shape == (3, 6, 6)
    assert torch.allclose(maps, expected.detach(), atol=1e-6)
    assert maps.max() > 0 and (maps == 0).any()  # the ReLU cut some of it: not a trivial case


def build(name: str, options: dict, size: int) -> nn.Module:
    model = MODELS.build(name, options, num_classes=3, in_channels=1, image_size=(size, size))
    return model.eval()


# Every family of imgcls/models (and each kind of network in the resnet family) at the 8x8 of
# the digits, and the layer the rule picks at 32x32 where the family is torchvision's or has
# its feature layers in one module.
FAMILIES = {
    "simplecnn": ({"widths": [8, 16], "hidden": 16}, None),
    "lenet5": ({}, "features"),
    "lenet5_relu": ({}, "features"),
    "bncnn": ({"widths": [8, 16], "depths": [1, 1]}, None),
    "alexnet": ({}, "features"),
    "vgg11_bn": ({}, None),
    "resnet8": ({}, "layers"),
    "resnet18": ({}, "layer4"),
    "wrn16_4": ({}, None),
    "resnet9": ({}, "features"),
    "seed_resnet": ({}, "layers"),
    "densenet_bc": ({}, "features"),
    "efficientnet_b0": ({}, "features"),
    "airbench": ({"widths": [8, 16, 16]}, "groups"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_model_family_gets_a_map(family):
    torch.manual_seed(0)
    options, layer_at_32 = FAMILIES[family]
    model = build(family, options, 8)
    x = torch.randn(2, 1, 8, 8)
    layer = find_target_layer(model, x[:1], family)
    assert layer.size[0] * layer.size[1] > 1
    maps = grad_cam(model, layer.module, x, [0, 2])
    assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all() and (maps >= 0).all()
    if layer_at_32 is not None:
        example = torch.randn(1, 1, 32, 32)
        assert find_target_layer(build(family, options, 32), example).name == layer_at_32


# ConvNeXt runs its blocks' norm and MLP channels-last (N, H, W, C) and a ViT's attention is
# (N, heads, tokens, width): neither is a map; at 32x32 ConvNeXt's last map is 1x1, so the
# rule goes back to the last 2x2 one (before stage 4's downsampling), and a ViT's only map is
# its patch embedding's. (Before: ConvNeXt's last MLP, and the ViT's attention k_norm.)
MODERN = {
    "torchvision convnext_tiny": ("torchvision", {"variant": "convnext_tiny"}, "features.6.0"),
    "timm test_convnext": ("timm", {"variant": "test_convnext"}, "stages.3.downsample.0"),
    "timm test_vit": ("timm", {"variant": "test_vit"}, "patch_embed.proj"),
}


@pytest.mark.parametrize("case", list(MODERN))
def test_channels_last_and_attention_tensors_are_not_taken_for_maps(case):
    name, options, expected = MODERN[case]
    if name == "timm":
        pytest.importorskip("timm", reason="needs the 'timm' extra (make setup installs it)")
    torch.manual_seed(0)
    model = build(name, options, 32)
    x = torch.randn(2, 1, 32, 32)
    layer = find_target_layer(model, x[:1], name)
    assert layer.name == expected and layer.size == (2, 2)
    maps = grad_cam(model, layer.module, x, [0, 2])
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all() and (maps >= 0).all()


def test_a_model_without_a_feature_map_is_refused_by_name():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(CamUnsupported, match="model=pooled on 2x2 images has none"):
        find_target_layer(model, torch.zeros(1, 1, 2, 2), "model=pooled")


def test_the_panel_shows_the_most_confident_mistakes_and_correct_answers():
    probabilities = np.array(
        [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05], [0.55, 0.45]]
    )
    targets = np.array([0, 0, 1, 1, 1, 0])
    choice = choose_extremes(targets, probabilities, count=2)
    assert choice.wrong.tolist() == [4, 1]  # wrong at 0.95, then 0.8 (and 0.6 left out)
    assert choice.right.tolist() == [0, 3]  # right at 0.9, then 0.7 (and 0.55 left out)
    assert choice.shown.tolist() == [4, 1, 0, 3]
    multihot = np.array([[1, 1], [1, 0], [0, 0], [0, 1], [1, 0], [0, 1]])
    labels = choose_extremes(multihot, probabilities, count=3)  # top label in the set: right
    assert labels.wrong.tolist() == [1, 2, 5] and labels.right.tolist() == [4, 0, 3]


def test_the_panel_draws_colour_images_of_any_shape(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 6, 10), dtype=np.uint8)  # RGB, wider than high
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    targets = np.array([0, 0, 0, 0, 0])  # every prediction of class 1 is a mistake
    choice = choose_extremes(targets, probabilities)
    maps = {int(i): rng.random((6, 10)).astype(np.float32) for i in choice.shown}
    classes = ["$cat", "dog_$x"]  # a $ is text, not TeX
    path = plot_cam_panel(images, maps, targets, choice, classes, tmp_path / "cam.png", "features")
    with Image.open(path) as panel:
        assert panel.format == "PNG" and panel.size[0] > 500 and panel.size[1] > 200
    no_mistakes = choose_extremes(np.array([0, 1, 0, 1, 0]), probabilities)
    assert len(no_mistakes.wrong) == 0
    plot_cam_panel(images, maps, targets, no_mistakes, classes, tmp_path / "right.png", "x")
    assert (tmp_path / "right.png").read_bytes().startswith(PNG)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run with its figures, EMA weights, channels_last and bf16 autocast: the panel is
    drawn from the best checkpoint's EMA weights, in float32 on the CPU."""
    root = tmp_path_factory.mktemp("cam")
    overrides = [
        *TINY,
        PLOTS,
        "trainer.ema.decay=0.9",
        "trainer.channels_last=true",
        "trainer.precision=bf16",
    ]
    result = train(compose(overrides), root / "run", overrides=overrides)
    assert result.summary["precision"] == "bf16"
    return result.run_dir


def test_a_run_draws_the_panel_into_its_report(run_dir):
    panel = run_dir / "plots" / "cam.png"
    assert panel.read_bytes().startswith(PNG)
    assert "no Grad-CAM panel" not in (run_dir / "train.log").read_text()
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    section = html.split('id="part-cam"', 1)[1].split("</section>", 1)[0]
    assert "Where the model looked" in html and 'src="data:image/png;base64,' in section


def test_eval_cam_true_writes_the_panel(run_dir, tmp_path):
    out = tmp_path / "ev"
    assert cli.main(["eval", f"run={run_dir}", f"out={out}", "cam=true", "device=cpu"]) == 0
    assert (out / "cam.png").read_bytes().startswith(PNG)
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"


@pytest.mark.parametrize(
    "args, message",
    [
        (["cam=maybe"], "cam=maybe is invalid: expected true or false"),
        (["cam=true", "run=[{run},{run}]"], "cam=true explains one run's model"),
    ],
)
def test_a_bad_cam_value_is_one_line_and_exit_2(run_dir, tmp_path, capsys, args, message):
    args = [a.format(run=run_dir) for a in args]
    runs = [] if any(a.startswith("run=") for a in args) else [f"run={run_dir}"]
    assert cli.main(["eval", *runs, *args, f"out={tmp_path / 'x'}"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "x").exists()
