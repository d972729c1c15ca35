"""Bad data input: one line on stderr, exit code 2, and no run directory left behind."""

from __future__ import annotations

import pytest
from conftest import CPU
from fabricate import write_folder

from imgcls.cli import main

MODEL = [
    "model=simplecnn",
    "model.widths=[8]",
    "model.hidden=16",
    "trainer.epochs=1",
    "trainer.batch_size=4",
    *CPU,
]


def fails(capsys, tmp_path, *overrides: str) -> str:
    out = tmp_path / "outputs"
    code = main(["train", *MODEL, f"output_root={out}", *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("imgcls: error: ") and "\n" not in err and "Traceback" not in err
    assert not list(out.rglob("summary.json")) if out.exists() else True
    return err


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"])
def test_missing_files_say_which_files_where(name, capsys, tmp_path):
    err = fails(capsys, tmp_path, f"dataset={name}", f"dataset.root={tmp_path / 'nowhere'}")
    assert f"{name} files not found: expected" in err and str(tmp_path / "nowhere") in err


def test_missing_folder_root(capsys, tmp_path):
    err = fails(capsys, tmp_path, "dataset=folder", f"dataset.root={tmp_path / 'nope'}")
    assert "dataset.root=" in err and "is not a folder" in err


def test_empty_class_folder(capsys, tmp_path):
    root = write_folder(tmp_path / "imgs", classes=("a", "b"))
    (root / "empty").mkdir()
    err = fails(capsys, tmp_path, "dataset=folder", f"dataset.root={root}")
    assert f"class folder {root / 'empty'} has no images" in err


def test_one_class_folder(capsys, tmp_path):
    root = write_folder(tmp_path / "imgs", classes=("only",))
    err = fails(capsys, tmp_path, "dataset=folder", f"dataset.root={root}")
    assert "a classifier needs at least 2" in err


@pytest.mark.parametrize("loader", ["memory", "dataloader"])
def test_corrupt_image_is_named(loader, capsys, tmp_path):
    root = write_folder(tmp_path / "imgs", classes=("a", "b"), per_class=10)
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    out = tmp_path / "outputs"
    code = main(
        [
            "train",
            *MODEL,
            f"output_root={out}",
            "dataset=folder",
            f"dataset.root={root}",
            f"data.loader={loader}",
            "dataset.stats_images=1",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"cannot read image file {bad}" in err


def test_batch_size_larger_than_dataset(capsys, tmp_path):
    root = write_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6)
    err = fails(
        capsys, tmp_path, "dataset=folder", f"dataset.root={root}", "trainer.batch_size=500"
    )
    assert "trainer.batch_size=500 is larger than the" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment.crop.paddin=2", r"unknown config key 'augment.crop.paddin' — did you mean"),
        ("augment.color.p=2", r"augment.color.p=2 is invalid: it is a probability"),
        ("augment.autoaugment.policy=mnist", r"unknown augment.autoaugment.policy 'mnist'"),
        ("data.loader=disk", r"unknown data.loader 'disk'; available: auto, dataloader, memory"),
        ("augment.mix.mixup_alpha=-1", r"augment.mix.mixup_alpha=-1 is invalid"),
    ],
)
def test_bad_augment_and_loader_values(override, message, capsys, tmp_path):
    import re

    err = fails(capsys, tmp_path, override)
    assert re.search(message, err), err
