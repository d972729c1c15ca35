"""Fashion-MNIST and MNIST from the system folder of Debian's packages, and the real data.

The system-folder lookup is tested with fabricated IDX files in a temporary folder standing
in for /usr/share/datasets (``$IMGCLS_SYSTEM_DATASETS``). The last test trains on the real
Fashion-MNIST that ``apt-get install dataset-fashion-mnist`` installs, and is skipped where
the package is not installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SMALL_MODEL
from fabricate import write_idx

from imgcls.app import build
from imgcls.cli import main
from imgcls.config.compose import compose
from imgcls.data import idx

MODEL = SMALL_MODEL
REAL = Path(idx.SYSTEM_DATASETS) / "fashion-mnist"


@pytest.fixture
def system(tmp_path, monkeypatch) -> Path:
    """An empty working directory (no ``data/``) and a temporary /usr/share/datasets."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    folder = tmp_path / "usr-share-datasets"
    folder.mkdir()
    monkeypatch.setenv("IMGCLS_SYSTEM_DATASETS", str(folder))
    return folder


def splits(name: str, *extra: str):
    return build.build_dataset(compose([f"dataset={name}", *extra]))


def sizes(data) -> tuple[int, int, int]:
    return len(data.train), len(data.val), len(data.test)


def test_default_root_is_null_and_the_system_folder_is_debians(monkeypatch):
    for name in ("fashion_mnist", "mnist"):
        assert compose([f"dataset={name}"]).dataset.root is None
    monkeypatch.delenv("IMGCLS_SYSTEM_DATASETS", raising=False)
    assert idx.system_folder("fashion_mnist") == Path("/usr/share/datasets/fashion-mnist")
    assert idx.system_folder("mnist") == Path("/usr/share/datasets/mnist")


@pytest.mark.parametrize(
    ("name", "folder"), [("fashion_mnist", "fashion-mnist"), ("mnist", "mnist")]
)
def test_found_in_the_system_folder_when_root_is_not_given(system, name, folder):
    write_idx(system, folder, gz=True, n=(200, 40))  # Debian's layout: the .gz files themselves
    data = splits(name)
    assert sizes(data) == (180, 20, 40)
    assert data.classes[0] == ("T-shirt/top" if name == "fashion_mnist" else "0")


def test_the_project_root_comes_before_the_system_folder(system):
    write_idx(system, "fashion-mnist", gz=True, n=(200, 40))
    write_idx(Path("data"), "FashionMNIST/raw", n=(100, 20))
    assert sizes(splits("fashion_mnist")) == (90, 10, 20)


def test_an_explicit_root_is_the_only_place_searched(system, tmp_path):
    write_idx(system, "fashion-mnist", gz=True, n=(200, 40))
    mine = write_idx(tmp_path / "mine", "", n=(100, 20))
    assert sizes(splits("fashion_mnist", f"dataset.root={mine}")) == (90, 10, 20)
    with pytest.raises(Exception, match="files not found") as error:
        splits("fashion_mnist", f"dataset.root={tmp_path / 'elsewhere'}")
    assert str(system) not in str(error.value)


def test_missing_files_name_both_places_and_the_install_command(system, tmp_path, capsys):
    code = main(["train", *MODEL, "dataset=fashion_mnist", f"output_root={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("imgcls: error: ") and err.count("\n") == 1, err
    assert str(Path("data").resolve() / "FashionMNIST" / "raw") in err
    assert str(system / "fashion-mnist") in err
    assert "apt-get install dataset-fashion-mnist" in err
    assert not list((tmp_path / "out").rglob("summary.json"))


def test_mnist_message_names_its_system_folder_without_a_package(system):
    with pytest.raises(Exception, match="files not found") as error:
        splits("mnist")
    assert str(system / "mnist") in str(error.value)
    assert "apt-get" not in str(error.value)


@pytest.mark.slow
@pytest.mark.skipif(
    not all(idx.locate(REAL, name) for name in idx.FILES.values()),
    reason=f"the real Fashion-MNIST is not in {REAL}: `apt-get install dataset-fashion-mnist` "
    "(.ci/run installs it where apt-get can)",
)
def test_real_fashion_mnist_trains_one_short_epoch_through_the_cli(tmp_path, monkeypatch, capsys):
    """100 batches of 32 (3,200 of the 54,000 training images) of a narrow SimpleCNN, through
    the command line (in-process: the data is the subject, not the program's start-up); the
    loader must see every image, and the model must learn something."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGCLS_SYSTEM_DATASETS", str(REAL.parent))
    code = main(
        [
            "train",
            "dataset=fashion_mnist",
            *["model=simplecnn", "model.widths=[16,32]", "model.hidden=64"],
            *["trainer.epochs=1", "trainer.batch_size=32", "trainer.limit_train_batches=100"],
            *["scheduler.warmup_epochs=0", "trainer.device=cpu", "trainer.precision=32"],
            "trainer.plots=false",  # no figures: the data is the subject
            f"output_root={tmp_path / 'out'}",
        ]
    )
    output = capsys.readouterr()
    assert code == 0, output.err
    seen = re.search(r"fashion_mnist: (\d+) train / (\d+) val / (\d+) test images", output.out)
    assert seen, output.out
    train, val, test = map(int, seen.groups())
    assert (train, val, test) == (54_000, 6_000, 10_000)  # 60,000 training images, 10% for val
    (summary,) = (tmp_path / "out").rglob("summary.json")
    summary = json.loads(summary.read_text())
    assert summary["steps"] == 100 and summary["data"]["classes"] == idx.FASHION_CLASSES
    assert summary["test"]["accuracy"] > 0.5, summary["test"]  # chance is 0.1; about 0.66 here


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_bncnn_is_a_small_cnn_for_any_small_image(shape):
    import torch

    from imgcls.registry import MODELS

    model = MODELS.build("bncnn", num_classes=10, in_channels=shape[0], image_size=shape[1:])
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    out = model(torch.randn(2, *shape))
    out.sum().backward()
    assert out.shape == (2, 10)


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
def test_bncnn_global_pool_is_the_mean_the_maximum_or_both(pool):
    import torch

    from imgcls.registry import MODELS

    model = MODELS.build(
        "bncnn", {"global_pool": pool}, num_classes=4, in_channels=1, image_size=(16, 16)
    ).eval()
    x = torch.randn(3, 1, 16, 16)
    pooled = model.features(x)
    last_map = model.features[:-2](x)  # before the pooling and the flatten
    mean, peak = last_map.mean(dim=(2, 3)), last_map.amax(dim=(2, 3))
    expected = {"avg": mean, "max": peak, "avgmax": torch.cat([mean, peak], 1)}[pool]
    assert torch.allclose(pooled, expected)
    assert model(x).shape == (3, 4)


def test_the_fmnist_recipes_compose_with_their_models():
    expected = {
        "fmnist_bncnn": ("bncnn", None),
        "fmnist_resnet18": ("resnet", "resnet18"),
        "fmnist_densenet": ("densenet", "densenet_bc"),
        "fmnist_wrn28_10": ("resnet", "wrn28_10"),
    }
    for experiment, (model, variant) in expected.items():
        cfg = compose([f"experiment={experiment}"])
        assert cfg.dataset.name == "fashion_mnist" and cfg.dataset.root is None
        assert (cfg.model.name, cfg.model.get("variant")) == (model, variant), experiment
        assert cfg.scheduler.warmup_epochs >= 1 and cfg.trainer.epochs >= 10


def test_bncnn_options_are_checked_in_one_line(tmp_path, capsys):
    code = main(["train", "model=bncnn", "model.depths=[1,2]", f"output_root={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "model.depths=[1, 2] is invalid" in err, err
