"""benchmarks/fmnist_tables.py: Fashion-MNIST-LT and the Fashion-MNIST mosaics as label tables.

Run on fabricated IDX files in a temporary folder standing in for /usr/share/datasets
(``$IMGCLS_SYSTEM_DATASETS``); every fabricated image is distinct noise, so a tile of a mosaic
can be traced back to the one image it came from.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from fabricate import fmnist_tables, write_fmnist_table, write_idx
from PIL import Image

from imgcls.app.job import train
from imgcls.config.compose import compose
from imgcls.data import idx

tables = fmnist_tables()


@pytest.fixture
def source(tmp_path, monkeypatch) -> Path:
    """Debian's layout (gzipped IDX files in ``fashion-mnist/``): 1,000 train, 60 test images."""
    write_idx(tmp_path / "datasets", "fashion-mnist", gz=True, n=(1000, 60))
    monkeypatch.setenv("IMGCLS_SYSTEM_DATASETS", str(tmp_path / "datasets"))
    return idx.system_folder("fashion_mnist")


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_the_standard_profile_for_the_real_sizes():
    # CIFAR-10-LT's published counts (Cao et al. 2019), then Fashion-MNIST's 6,000 per class
    cifar = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert tables.long_tail_counts(5000, 10, 100) == cifar
    fashion = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert tables.long_tail_counts(6000, 10, 100) == fashion


def test_lt_keeps_the_exponential_profile_in_train_and_all_of_test(source, tmp_path):
    assert tables.main(["lt", "--out", str(tmp_path / "lt"), "--seed", "3"]) == 0
    table = rows(tmp_path / "lt")
    train_images, train_labels = tables.load_split(source, "train")
    test_images, test_labels = tables.load_split(source, "test")
    names = tables.CLASSES
    train = [r for r in table if r["split"] == "train"]
    counts = [sum(r["label"] == name for r in train) for name in names]
    assert counts == [int(100 * 0.01 ** (c / 9)) for c in range(10)]  # 100 per class here
    test = [r for r in table if r["split"] == "test"]
    assert sorted(int(Path(r["image"]).stem) for r in test) == list(range(60))
    for row in train[:20] + test[:20]:  # the file is the original image, its label the original
        images, labels = (
            (train_images, train_labels) if row in train else (test_images, test_labels)
        )
        i = int(Path(row["image"]).stem)
        assert row["image"].startswith(row["split"] + "/")
        assert np.array_equal(pixels(tmp_path / "lt" / row["image"]), images[i])
        assert row["label"] == names[labels[i]]


def test_lt_refuses_an_imbalance_that_empties_a_class(source, tmp_path, capsys):
    assert tables.main(["lt", "--out", str(tmp_path / "lt"), "--imbalance", "1000"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--imbalance" in error
    assert not (tmp_path / "lt").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_mosaic_labels_are_the_tiles_classes_and_splits_share_no_image(source, tmp_path):
    out = tmp_path / "mosaic"
    args = ["--train", "40", "--val", "10", "--test", "30"]
    assert tables.main(["mosaic", "--out", str(out), *args]) == 0
    owner = {}  # the bytes of every source image -> (its split, its index there, its class)
    for split in ("train", "test"):
        images, labels = tables.load_split(source, split)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            owner[image.tobytes()] = (split, i, int(label))
    assert len(owner) == 1060  # fabricated images are all distinct
    table = rows(out)
    assert [r["split"] for r in table] == ["train"] * 40 + ["val"] * 10 + ["test"] * 30
    used = {"train": set(), "val": set(), "test": set()}
    for row in table:
        mosaic = pixels(out / row["image"])
        assert mosaic.shape == (56, 56)
        tiles = [mosaic[r : r + 28, c : c + 28] for r in (0, 28) for c in (0, 28)]
        found = [owner[tile.tobytes()] for tile in tiles]
        source_split = "test" if row["split"] == "test" else "train"
        assert {split for split, _, _ in found} == {source_split}
        used[row["split"]].update(i for _, i, _ in found)
        classes = sorted({c for _, _, c in found})
        assert row["labels"].split("|") == [tables.CLASSES[c] for c in classes]
    assert not used["train"] & used["val"]  # validation holds no image of a training mosaic


def test_same_seed_same_bytes_and_a_full_folder_needs_force(source, tmp_path, capsys):
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.*")}

    args = ["mosaic", "--train", "8", "--val", "4", "--test", "4"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert tables.main([*args, "--out", str(tmp_path / name), "--seed", seed]) == 0
    first = files(tmp_path / "a")
    assert first == files(tmp_path / "b")
    assert first != files(tmp_path / "c")
    capsys.readouterr()
    assert tables.main([*args, "--out", str(tmp_path / "a"), "--seed", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert files(tmp_path / "a") == first  # refused: untouched
    assert tables.main([*args, "--out", str(tmp_path / "a"), "--seed", "2", "--force"]) == 0
    assert files(tmp_path / "a") == files(tmp_path / "c")


TINY_RECIPE = [
    "model.widths=[4,8,8]",
    "trainer.epochs=1",
    "trainer.batch_size=16",
    "trainer.device=cpu",
    "trainer.precision=32",
    "report.html=false",
]


@pytest.mark.parametrize("kind", ["lt", "mosaic"])
def test_each_recipe_trains_on_its_table_in_one_command(kind, tmp_path):
    """experiment=fmnist_lt|fmnist_mosaic plus the table's path is the whole command: the
    classes in Fashion-MNIST's order, the task and the monitored metric come from the recipe."""
    table = write_fmnist_table(tmp_path / "data", kind)
    overrides = [f"experiment=fmnist_{kind}", f"dataset.path={table}", *TINY_RECIPE]
    result = train(compose([*overrides, f"output_root={tmp_path / 'out'}"]))
    summary = result.summary
    assert summary["classes"] == tables.CLASSES
    if kind == "lt":
        assert summary["data"]["task"] == "multiclass"
        assert summary["best"]["metric"] == "val_balanced_accuracy"
        assert "balanced_accuracy" in summary["test"]
    else:
        assert summary["data"]["task"] == "multilabel"
        assert summary["best"]["metric"] == "val_map"
        assert "map" in summary["test"] and list(summary["thresholds"]) == tables.CLASSES
