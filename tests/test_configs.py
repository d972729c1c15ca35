"""Every config file composes, validates and builds; bad overrides fail with one clear line."""

from __future__ import annotations

import pytest
import torch
from fabricate import FABRICATORS, write_fmnist_table, write_label_table

from imgcls.app import build
from imgcls.app.validation import validate
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.files import COMPONENT_GROUPS, LIST_GROUPS, group_options, option_description

SMALL_DATA = [
    "dataset=synthetic",
    "dataset.num_samples=60",
    "dataset.image_size=8",
    "dataset.channels=1",
]

# Experiments whose recipe reads the label table of benchmarks/fmnist_tables.py (its kind)
TABLE_EXPERIMENTS = {"fmnist_lt": "lt", "fmnist_mosaic": "mosaic"}
ALL_OPTIONS = [
    (g, o) for g in (*COMPONENT_GROUPS, "trainer", "experiment") for o in group_options(g)
]


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_config_file_composes_validates_and_builds(group, option, tmp_path):
    overrides = [f"{group}={option}"] if group != "regularizer" else [f"regularizer=[{option}]"]
    if group != "dataset" and option not in TABLE_EXPERIMENTS:
        overrides += SMALL_DATA
    if option in TABLE_EXPERIMENTS:  # recipes over a label table of their own: a small one
        overrides.append(f"dataset.path={write_fmnist_table(tmp_path, TABLE_EXPERIMENTS[option])}")
    elif group == "experiment":  # the speed experiments validate on 2 %: too few of 60 images
        overrides.append("dataset.val_fraction=0.15")
    elif option in FABRICATORS:  # datasets read from files: small fabricated ones
        overrides.append(f"dataset.root={FABRICATORS[option](tmp_path / 'data')}")
    elif option == "table":  # a label table needs its path, not a root
        overrides.append(f"dataset.path={write_label_table(tmp_path / 'data')}")
    cfg = compose(overrides)
    validate(cfg)
    assert option_description(group, option), (
        f"conf/{group}/{option}.yaml needs a description comment"
    )
    data = build.build_dataset(cfg)
    assert data.num_classes >= 2 and len(data.train) > 0
    model = build.build_model(cfg, data)
    logits = model(torch.zeros(2, data.channels, *data.image_size))
    assert logits.shape == (2, data.num_classes)
    regularizers = build.build_regularizers(cfg)
    optimizer = build.build_optimizer(cfg, model.parameters(), regularizers)
    scheduler = build.build_scheduler(cfg, optimizer, steps_per_epoch=3, epochs=2)
    augment = build.build_augment(cfg)
    images = torch.rand(4, data.channels, *data.image_size)
    assert augment(images, torch.Generator().manual_seed(0)).shape == images.shape
    optimizer.step()
    scheduler.step()
    if group in COMPONENT_GROUPS:  # the name inside each file is the file's name
        node = cfg[group][option] if group in LIST_GROUPS else cfg[group]
        assert node.name == option


def test_regularizers_combine():
    cfg = compose(["regularizer=[l2,label_smoothing]"] + SMALL_DATA)
    names = sorted(r.name for r in build.build_regularizers(cfg))
    assert names == ["l2", "label_smoothing"]
    model = build.build_model(cfg, build.build_dataset(cfg))
    optimizer = build.build_optimizer(cfg, model.parameters(), build.build_regularizers(cfg))
    assert optimizer.param_groups[0]["weight_decay"] == cfg.regularizer.l2.weight_decay


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=nope"],
            r"unknown model 'nope'; available: airbench, alexnet, bncnn, densenet, efficientnet, lenet, resnet, seed_resnet, simplecnn, timm, torchvision, vgg",
        ),
        (["model=resnt"], r"unknown model 'resnt' — did you mean 'resnet'\?"),
        (
            ["optimizer.lrr=0.1"],
            r"unknown config key 'optimizer.lrr' — did you mean 'optimizer.lr'\?",
        ),
        (["trainer.epochs=abc"], r"trainer.epochs=abc has the wrong type: expected an integer"),
        (["trainer.monitor_mode=up"], r"unknown trainer.monitor_mode 'up'; available: max, min"),
        (["model=simplecnn,resnet"], r"is a sweep: add -m"),
    ],
)
def test_composition_errors_are_one_clear_line(overrides, message):
    with pytest.raises(UserError, match=message) as info:
        compose(overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.batch_size=0"], r"trainer.batch_size=0 is invalid"),
        (["trainer.precision=8"], r"unknown trainer.precision '8'"),
        (["trainer.device=gpu"], r"trainer.device='gpu' is invalid"),
        (
            ["+optimizer.lrr=1"],
            r"unknown config key 'optimizer.lrr' — did you mean 'optimizer.lr'",
        ),
        (
            ["model.widths=3", "model=simplecnn"],
            r"model.widths=3 has the wrong type: expected a list",
        ),
        (["+model.num_classes=3"], r"unknown config key 'model.num_classes'"),
        # ranges are checked while validating, before any model is built
        (["model=simplecnn", "model.dropout=1.5"], r"model.dropout=1.5 is invalid: use \[0, 1\)"),
        (["optimizer.lr=inf"], r"optimizer.lr=inf is invalid: use a finite number"),
        (["optimizer=sgd", "optimizer.momentum=2"], r"optimizer.momentum=2 is invalid"),
    ],
)
def test_validation_errors_are_one_clear_line(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(compose(overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=synthetic", "dataset.num_classes=1"], r"dataset.num_classes=1 is invalid"),
        (["dataset.val_fraction=0.6", "dataset.test_fraction=0.5"], r"leaves no training data"),
        (["model.variant=resnet7"], r"unknown resnet variant 'resnet7'"),
    ],
)
def test_build_errors_are_one_clear_line(overrides, message):
    cfg = compose(overrides)
    with pytest.raises(UserError, match=message):
        validate(cfg)  # the options' own rules fail here, the rest when the parts are built
        build.build_model(cfg, build.build_dataset(cfg))
