"""model.pretrained=true: torchvision's weights from the local torch hub cache, never fetched."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torchvision
from conftest import CPU

from imgcls import cli
from imgcls.app.job import train
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.models.pretrained import load_pretrained, rename_densenet_keys, weights_path
from imgcls.registry import MODELS


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of our own (TORCH_HOME), so no real cache is touched."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def resnet18_weights(hub):
    """A weights file where torch hub keeps it, saved from a freshly built torchvision model."""
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    return reference.state_dict()


def build(name: str, num_classes: int, channels: int, size: int, **options):
    return MODELS.build(
        name,
        {"pretrained": True, **options},
        num_classes=num_classes,
        in_channels=channels,
        image_size=(size, size),
    )


def test_expected_path_is_in_the_hub_cache(hub):
    assert weights_path("resnet18") == hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_imagenet_shaped_model_loads_every_tensor(resnet18_weights):
    model = build("resnet18", 1000, 3, 224, stem="imagenet")
    state = model.state_dict()
    assert state.keys() == resnet18_weights.keys()
    assert all(torch.equal(state[k], resnet18_weights[k]) for k in state)


def test_other_classes_channels_and_stem_load_what_fits(resnet18_weights, caplog):
    with caplog.at_level(logging.INFO, logger="imgcls"):
        model = build("resnet", 10, 1, 32, variant="resnet18", stem="cifar")
    state = model.state_dict()
    fresh = {"conv1.weight", "fc.weight", "fc.bias"}
    for key, value in state.items():
        if key in fresh:
            assert value.shape != resnet18_weights[key].shape
        else:
            assert torch.equal(value, resnet18_weights[key]), key
    assert "initialised afresh (shape differs): conv1, fc" in caplog.text


def test_report_lists_what_was_not_loaded(resnet18_weights):
    model = MODELS.build("resnet18", {}, num_classes=3, in_channels=3, image_size=(224, 224))
    report = load_pretrained(model, "resnet18")
    assert report.not_loaded == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == len(resnet18_weights) - 2


def test_missing_weights_name_the_file_and_the_url(hub):
    with pytest.raises(UserError) as info:
        build("efficientnet_b0", 10, 3, 32)
    message = str(info.value)
    expected = hub / "hub" / "checkpoints" / "efficientnet_b0_rwightman-7f5810bc.pth"
    assert str(expected) in message
    assert "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth" in message
    assert "\n" not in message


def test_unreadable_weights_are_one_line(hub):
    path = weights_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read pretrained weights"):
        build("resnet18", 10, 3, 32)


def test_old_densenet_keys_are_renamed():
    old = {"features.denseblock1.denselayer1.norm.1.weight": 1, "classifier.bias": 2}
    assert rename_densenet_keys(old) == {
        "features.denseblock1.denselayer1.norm1.weight": 1,
        "classifier.bias": 2,
    }


def test_cli_without_weights_exits_2_and_leaves_no_run(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        [
            "train",
            "model=resnet",
            "model.variant=resnet18",
            "model.pretrained=true",
            "experiment=smoke",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "resnet18-f37072fd.pth" in err and "https://" in err
    assert not list(tmp_path.rglob(".hydra")) and not list(tmp_path.rglob("summary.json"))


def test_training_from_pretrained_weights(resnet18_weights, tmp_path, caplog):
    overrides = [
        "model=resnet",
        "model.variant=resnet18",
        "model.pretrained=true",
        "dataset=synthetic",
        "dataset.num_samples=120",
        "dataset.image_size=8",
        "dataset.channels=3",
        "dataset.num_classes=3",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        *CPU,
    ]
    with caplog.at_level(logging.INFO, logger="imgcls"):
        result = train(compose(overrides), tmp_path / "run")
    assert result.summary["status"] == "completed"
    assert "pretrained resnet18: loaded 119/122 tensors" in caplog.text  # all but conv1 and fc
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["params"] == 11_170_371 and summary["flops"] > 0  # cifar stem, 3 classes
