"""experiment=zoo_fmnist_modern: every entry of conf/zoo/ composes, validates and builds for
Fashion-MNIST's 1x28x28 images, and every entry trains on the same budget of images."""

from __future__ import annotations

import pytest
import torch

from imgcls.app import build
from imgcls.app.validation import validate
from imgcls.config.compose import compose
from imgcls.config.files import group_options, option_description

pytest.importorskip("timm")

ENTRIES = group_options("zoo")
FMNIST_LIKE = ["dataset=synthetic", "dataset.image_size=28", "dataset.channels=1"]
BUDGET = 2 * 12_800  # training images per run: conf/experiment/zoo_fmnist_modern.yaml


def test_the_zoo_has_the_modern_models_and_the_baselines():
    assert set(ENTRIES) == {
        "convnext_atto",
        "vit_tiny",
        "mobilenet_v3_small",
        "regnetx_002",
        "efficientnetv2_b0",
        "bncnn",
        "airbench",
    }
    sweep = compose(["experiment=zoo_fmnist_modern"], return_hydra=True)
    assert sorted(sweep.hydra.sweeper.params["+zoo"].split(",")) == ENTRIES
    assert sweep.hydra.sweeper.params["seed"] == "0,1,2"


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_entry_builds_for_28x28_gray_images_on_one_budget(entry):
    cfg = compose(["experiment=zoo_fmnist_modern", f"+zoo={entry}", *FMNIST_LIKE])
    validate(cfg)
    assert option_description("zoo", entry)
    trainer = cfg.trainer
    images = trainer.epochs * trainer.limit_train_batches * trainer.batch_size
    assert BUDGET <= images < BUDGET + trainer.epochs * trainer.batch_size  # whole batches
    data = build.build_dataset(cfg)
    with torch.device("meta"):
        model = build.build_model(cfg, data)
        assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, data.num_classes)
