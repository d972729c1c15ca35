"""model=torchvision: every torchvision classifier builds for any class count, channel count
and input size it can take, or refuses the input in one line naming the smallest it takes."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torchvision
from conftest import TINY
from torch import nn

from imgcls import cli
from imgcls.app import build
from imgcls.app.validation import validate
from imgcls.base.errors import UserError
from imgcls.config.catalog import VARIANTS
from imgcls.config.compose import compose
from imgcls.config.torchvision_catalog import (
    SMALLEST_SIDE,
    TORCHVISION_MODELS,
    torchvision_input_rule,
)
from imgcls.models import torchvision_any
from imgcls.models.facts import count_parameters
from imgcls.models.pretrained import weights_path
from imgcls.registry import MODELS

# torchvision's models that model=torchvision builds (the others belong to imgcls families,
# whose own tests build every variant at 1x28x28 and 3x224x224).
OWN = [n for n in TORCHVISION_MODELS if n not in VARIANTS]
# Larger siblings of a model checked at 1x32x32 (same code path): checked at 3x224x224 only.
LARGEST = {"convnext_large", "efficientnet_v2_l", "regnet_y_128gf", "swin_v2_b", "vit_h_14"}
TINY_DATA = ["dataset=synthetic", "dataset.image_size=32", "dataset.channels=1"]


def meta_logits(name: str, shape: tuple[int, int, int], **options) -> torch.Size:
    """Build ``name`` for 7 classes on the meta device (no memory, no arithmetic) and run it."""
    c, h, w = shape
    with torch.device("meta"):
        model = MODELS.build(name, options, num_classes=7, in_channels=c, image_size=(h, w))
        return model.eval()(torch.zeros(2, *shape)).shape


def test_the_catalogue_is_torchvisions_list():
    assert list(TORCHVISION_MODELS) == torchvision.models.list_models(module=torchvision.models)
    assert len(TORCHVISION_MODELS) == 80


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 32, 32)], ids=["3x224x224", "1x32x32"])
def test_every_torchvision_model_builds_or_refuses_in_one_line(shape):
    refused = {}
    for name in OWN:
        if shape[1] == 32 and name in LARGEST:
            continue
        rule = torchvision_input_rule(name, shape[1:], None)
        if rule is None:
            assert meta_logits(name, shape) == (2, 7), name
        else:
            with pytest.raises(UserError) as caught:
                meta_logits(name, shape)
            assert "\n" not in str(caught.value) and "smallest" in str(caught.value)
            refused[name] = str(caught.value)
    if shape[1] == 224:
        assert not refused
    else:  # what cannot take 32x32 at all: MaxViT's 7x7 windows and Inception's 75 pixels
        assert set(refused) == {"inception_v3", "maxvit_t"}, refused
        assert "smallest input is 75x75" in refused["inception_v3"]


@pytest.mark.slow
def test_the_smallest_inputs_are_exact():
    """Each listed smallest side runs, and one pixel less fails inside torchvision itself."""
    for name, side in SMALLEST_SIDE.items():
        with torch.device("meta"):
            model = torchvision_any._build(name, 7, (side, side), None).eval()
            assert model(torch.zeros(1, 3, side, side)).shape == (1, 7), name
            with pytest.raises(RuntimeError):
                model(torch.zeros(1, 3, side - 1, side - 1))


def test_vision_transformer_takes_small_images_and_a_patch_size():
    assert meta_logits("vit_b_16", (3, 32, 32)) == (2, 7)  # 2x2 patches of 16
    with torch.device("meta"):
        model = MODELS.build(
            "vit_b_16", {"patch_size": 4}, num_classes=7, in_channels=1, image_size=(32, 32)
        )
    assert model.patch_size == 4 and model.seq_length == 8 * 8 + 1
    assert model.conv_proj.in_channels == 1 and model.heads.head.out_features == 7
    assert len(model.encoder.layers) == 12 and model.hidden_dim == 768  # still ViT-B
    with pytest.raises(
        UserError, match=r"multiple of its patch size 16 \(smallest 16x16\); got 24x24"
    ):
        meta_logits("vit_b_16", (3, 24, 24))


def test_model_torchvision_alone_builds_the_default():
    with torch.device("meta"):
        model = MODELS.build("torchvision", {}, num_classes=4, in_channels=3, image_size=(8, 8))
    assert type(model).__name__ == "MobileNetV3" and model.classifier[-1].out_features == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.variant=convnxt_tiny"],
            "unknown torchvision model 'convnxt_tiny' — did you mean 'convnext_tiny'? available: alexnet, convnext_base",
        ),
        (
            ["model.variant=resnet18"],
            "model.variant=resnet18 is built by imgcls's own resnet family (small-image stem, "
            "recipe): choose it with model=resnet model.variant=resnet18",
        ),
        (
            ["model.variant=convnext_tiny", "model.patch_size=4"],
            "model.patch_size=4 is invalid: only the Vision Transformers",
        ),
        (
            ["model.variant=vit_b_16", "model.patch_size=0"],
            "model.patch_size=0 is invalid: it must be at least 1",
        ),
        (
            ["model.name=convnext_tiny"],
            "model 'convnext_tiny' is a variant itself; choose model=torchvision to pick another",
        ),
    ],
)
def test_bad_names_and_options_are_one_line(overrides, message):
    cfg = compose(["model=torchvision", *overrides, *TINY_DATA])
    with pytest.raises(UserError) as caught:
        validate(cfg)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_composed_run_builds_and_trains_a_step():
    """From the config (as imgcls train does): ConvNeXt on one-channel 32x32 images."""
    cfg = compose(["model=torchvision", "model.variant=convnext_tiny", *TINY_DATA])
    validate(cfg)
    data = build.build_dataset(cfg)
    with torch.device("meta"):
        model = build.build_model(cfg, data)
    assert model.features[0][0].in_channels == 1
    assert model.classifier[-1].out_features == data.num_classes


def test_pretrained_rgb_filters_are_summed_for_one_channel(tmp_path, monkeypatch):
    """A fabricated local weights file (no download): the fitting tensors load, the head for
    another class count does not, and the first conv's RGB filters are summed."""
    torch.manual_seed(0)
    source = torchvision.models.get_model("mobilenet_v3_small", weights=None)  # 1000 classes
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = weights_path("mobilenet_v3_small")  # where torch hub keeps it
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    model = MODELS.build(
        "mobilenet_v3_small",
        {"pretrained": True},
        num_classes=5,
        in_channels=1,
        image_size=(32, 32),
    )
    stem = model.features[0][0]
    assert torch.equal(stem.weight, source.features[0][0].weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.features[5].block[0][0].weight, source.features[5].block[0][0].weight)
    assert model.classifier[-1].weight.shape == (5, 1024)
    assert torch.equal(model.classifier[0].weight, source.classifier[0].weight)


def test_rgb_filters_for_more_channels_keep_a_gray_response():
    weight = torch.randn(8, 3, 3, 3)
    image = torch.rand(1, 1, 5, 5).expand(1, 3, 5, 5)
    six = torchvision_any.rgb_to(weight, 6)  # each RGB filter twice, scaled by 3/6
    assert six.shape == (8, 6, 3, 3)
    same = nn.functional.conv2d(image[:, :1].expand(1, 6, 5, 5), six)
    assert torch.allclose(same, nn.functional.conv2d(image, weight), atol=1e-5)


def test_families_keep_their_names():
    wrapped = [n for n in TORCHVISION_MODELS if n in VARIANTS]
    assert len(wrapped) == 26
    assert all(MODELS.get(n).options.__name__ != "TorchvisionOptions" for n in wrapped)
    assert MODELS.get("convnext_tiny").options.__name__ == "TorchvisionOptions"


def test_list_torchvision_models_with_params_and_flops(capsys):
    argv = ["list", "models", "--source", "torchvision", "convnext*", "--input", "3x32x32"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    with torch.device("meta"):
        model = MODELS.build(
            "convnext_tiny", {}, num_classes=10, in_channels=3, image_size=(32, 32)
        )
    assert re.search(rf"convnext_tiny\s+-\s+{count_parameters(model):,}\s+\d", out), out
    assert count_parameters(model) == 27_827_818  # torchvision's 28.6 M less the 1000-class head
    assert "convnext_large" in out and "resnet" not in out


def test_list_torchvision_models_says_how_to_choose_each(capsys):
    assert cli.main(["list", "models", "res*", "--source", "torchvision"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"resnext50_32x4d\s+model=torchvision model.variant=resnext50_32x4d", out)
    assert re.search(
        r"resnet18\s+model=resnet model.variant=resnet18 \(imgcls's resnet family\)", out
    )
    assert cli.main(["list", "models", "--source", "torchvison"]) == 2
    assert "did you mean 'torchvision'?" in capsys.readouterr().err
    assert (
        cli.main(["list", "models", "inception*", "--source", "torchvision", "--input", "1x32x32"])
        == 0
    )
    assert "smallest input is 75x75" in capsys.readouterr().out


def test_train_and_eval_through_the_cli(tmp_path, monkeypatch):
    """One epoch of ShuffleNetV2 on 1x8x8 images from the command line; eval rebuilds it from
    the run's config."""
    monkeypatch.chdir(tmp_path)
    data = [o for o in TINY if not o.startswith("model")]
    model = ["model=torchvision", "model.variant=shufflenet_v2_x0_5"]
    assert cli.main(["train", *model, *data, "trainer.epochs=1", "output_root=out"]) == 0
    (summary_file,) = (tmp_path / "out").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "completed" and summary["model"] == "torchvision"
    assert summary["hyperparameters"]["model"]["variant"] == "shufflenet_v2_x0_5"
    assert summary_file.parent.name.endswith("_torchvision_synthetic")
    assert cli.main(["eval", f"run={summary_file.parent}", "device=cpu", "out=eval"]) == 0
    assert (tmp_path / "eval").is_dir()


def test_pretrained_vit_position_embeddings_follow_the_image_size():
    """ViT-B/16's 14x14 grid of position embeddings (224 pixels) resized for 32x32 images with
    patch 4 (8x8 grid); the class token's embedding is kept as it is."""
    with torch.device("meta"):
        model = MODELS.build(
            "vit_b_16", {"patch_size": 4}, num_classes=7, in_channels=3, image_size=(32, 32)
        )
    state = {
        "encoder.pos_embedding": torch.randn(1, 1 + 14 * 14, 4),
        "heads.head.bias": torch.zeros(3),
    }
    resized = torchvision_any.vit_position_resize(model)(state)
    assert (
        resized["encoder.pos_embedding"].shape
        == (1, 1 + 8 * 8, 4)
        == model.encoder.pos_embedding.shape[:2] + (4,)
    )
    assert torch.equal(resized["encoder.pos_embedding"][:, 0], state["encoder.pos_embedding"][:, 0])
    assert torch.equal(resized["heads.head.bias"], state["heads.head.bias"])


def test_a_refused_input_stops_the_run_in_one_line_leaving_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = [o for o in TINY if not o.startswith("model")]  # 1x8x8 images
    argv = ["train", "model=torchvision", "model.variant=inception_v3", *data, "output_root=out"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "imgcls: error: model inception_v3's smallest input is 75x75 pixels; got 8x8: resize the images\n"
    )
    assert not (tmp_path / "out").exists()


def test_small_images_get_the_small_image_stem_as_the_families_do():
    """stem=auto below 64 pixels: ShuffleNet's first convolution at stride 1 and its max-pool
    gone (28x28 stays 28x28 after the stem); at 224 pixels torchvision's stem is kept."""

    def built(size: int, **options) -> nn.Module:
        options = {"variant": "shufflenet_v2_x0_5", **options}
        with torch.device("meta"):
            return MODELS.build(
                "torchvision", options, num_classes=7, in_channels=1, image_size=(size, size)
            )

    small, large = built(28), built(224)
    assert torchvision_any.first_conv(small)[2].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert torchvision_any.first_conv(large)[2].stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in large.modules())
    assert torchvision_any.first_conv(built(28, stem="imagenet"))[2].stride == (2, 2)
    with torch.device("meta"):
        assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 7)


def test_stem_cifar_is_refused_where_the_stem_is_a_patch_embedding():
    cfg = compose(
        ["model=torchvision", "model.variant=convnext_tiny", "model.stem=cifar", *TINY_DATA]
    )
    with pytest.raises(UserError) as caught:
        validate(cfg)
    message = str(caught.value)
    assert "model.stem=cifar is invalid: convnext_tiny keeps torchvision's stem" in message
    assert "mobilenet_*" in message and "\n" not in message


def test_bn_momentum_reaches_every_batch_norm():
    """conf/model/torchvision.yaml sets PyTorch's 0.1; null keeps MobileNetV3's own 0.01 (too
    slow for a short run: its running statistics stay near their start and eval collapses)."""
    data = build.build_dataset(compose(["model=torchvision", *TINY_DATA]))

    def momenta(*overrides: str) -> set[float]:
        cfg = compose(["model=torchvision", *overrides, *TINY_DATA])
        with torch.device("meta"):
            model = build.build_model(cfg, data)
        return {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta() == {0.1}
    assert momenta("model.bn_momentum=null") == {0.01}
    cfg = compose(["model=torchvision", "model.bn_momentum=0", *TINY_DATA])
    with pytest.raises(
        UserError, match=r"model.bn_momentum=0 is invalid: use a number in \(0, 1\]"
    ):
        validate(cfg)
