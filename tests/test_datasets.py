"""Every dataset format, fabricated small on disk, read correctly and trained through the CLI."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_MODEL
from fabricate import FABRICATORS, write_cifar10, write_folder, write_idx, write_svhn

from imgcls.app import build
from imgcls.cli import main
from imgcls.config.compose import compose

MODEL = SMALL_MODEL


def splits(name: str, root: Path, *extra: str):
    return build.build_dataset(compose([f"dataset={name}", f"dataset.root={root}", *extra]))


def train_cli(tmp_path: Path, *overrides: str) -> dict:
    out = tmp_path / "outputs"
    code = main(["train", *MODEL, f"output_root={out}", *overrides])
    assert code == 0
    (summary,) = out.rglob("summary.json")
    return json.loads(summary.read_text())


@pytest.mark.parametrize("name", sorted(FABRICATORS))
def test_each_format_trains_through_the_cli(name, tmp_path):
    root = FABRICATORS[name](tmp_path / "data")
    summary = train_cli(tmp_path, f"dataset={name}", f"dataset.root={root}")
    assert summary["status"] == "completed"
    assert summary["dataset"] == name
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0


def test_idx_files_are_parsed_raw_and_gzipped_in_both_layouts(tmp_path):
    raw = splits("mnist", write_idx(tmp_path / "a", "MNIST/raw"))
    gz = splits("mnist", write_idx(tmp_path / "b", "", gz=True))  # directly in root
    assert raw.image_size == (28, 28) and raw.channels == 1
    assert raw.classes == [str(i) for i in range(10)]
    assert len(raw.train) + len(raw.val) == 100 and len(raw.test) == 20
    assert (raw.test.images == gz.test.images).all()
    data = gzip.decompress((tmp_path / "b" / "t10k-images-idx3-ubyte.gz").read_bytes())
    first = np.frombuffer(data, dtype=np.uint8, offset=16)[: 28 * 28].reshape(28, 28)
    assert (gz.test.images[0, 0].numpy() == first).all()
    fashion = splits("fashion_mnist", write_idx(tmp_path / "c", "FashionMNIST/raw", gz=True))
    assert fashion.classes[0] == "T-shirt/top" and fashion.classes[9] == "Ankle boot"


def test_cifar_pickles_keep_pixels_labels_and_names(tmp_path):
    root = write_cifar10(tmp_path)
    data = splits("cifar10", root)
    batch = pickle.loads(
        (root / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="bytes"
    )
    assert data.classes[:3] == ["airplane", "automobile", "bird"]
    assert data.image_size == (32, 32) and data.channels == 3
    assert (data.test.images[3].numpy().reshape(-1) == batch[b"data"][3]).all()
    assert data.test.labels.tolist() == batch[b"labels"]
    coarse = splits("cifar100", FABRICATORS["cifar100"](tmp_path), "dataset.labels=coarse")
    assert len(coarse.classes) == 20 and coarse.classes[0] == "coarse0"


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    root = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(Exception, match=r"refusing to load builtins.print"):
        splits("cifar10", root)


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path):
    import scipy.io

    root = write_svhn(tmp_path)
    data = splits("svhn", root)
    mat = scipy.io.loadmat(str(root / "test_32x32.mat"))
    expected = mat["y"].reshape(-1).astype(int) % 10
    assert data.test.labels.tolist() == expected.tolist()
    assert (data.test.images[0].numpy() == mat["X"][..., 0].transpose(2, 0, 1)).all()


def test_validation_split_is_stratified_and_fixed_by_split_seed(tmp_path):
    root = write_cifar10(tmp_path, per_batch=40)
    a = splits("cifar10", root, "dataset.val_fraction=0.2")
    b = splits("cifar10", root, "dataset.val_fraction=0.2")
    c = splits("cifar10", root, "dataset.val_fraction=0.2", "dataset.split_seed=1")
    assert len(a.val) == 40 and np.bincount(a.val.labels.numpy()).tolist() == [4] * 10
    assert (a.val.images == b.val.images).all()
    assert not (a.val.images == c.val.images).all()


def test_folder_images_of_mixed_sizes_and_modes_are_resized_and_converted(tmp_path):
    root = write_folder(tmp_path / "imgs")
    rgb = splits("folder", root, "dataset.image_size=16").materialize()
    gray = splits("folder", root, "dataset.image_size=12", "dataset.channels=1").materialize()
    assert rgb.classes == ["cat", "dog", "fox"]
    assert rgb.train.images.shape[1:] == (3, 16, 16)
    assert gray.train.images.shape[1:] == (1, 12, 12)
    assert len(rgb.train) + len(rgb.val) + len(rgb.test) == 24


def test_folder_with_train_val_test_subfolders(tmp_path):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        write_folder(tmp_path / split, classes=("a", "b"), per_class=count)
    data = splits("folder", tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 6)
    summary = train_cli(
        tmp_path, "dataset=folder", f"dataset.root={tmp_path}", "trainer.batch_size=4"
    )
    assert summary["data"]["classes"] == ["a", "b"]
