"""`imgcls preview` writes a PNG grid; data.loader chooses the memory or the DataLoader path."""

from __future__ import annotations

import json

from conftest import CPU, TINY
from fabricate import write_folder

from imgcls.app import build
from imgcls.cli import main
from imgcls.config.compose import compose
from imgcls.data.pipeline import make_loaders
from imgcls.data.sample_loader import SampleLoader

PNG = b"\x89PNG\r\n\x1a\n"


def test_preview_writes_a_png_grid_into_a_new_run_directory(tmp_path, capsys):
    from PIL import Image

    code = main(
        [
            "preview",
            "dataset=synthetic",
            "dataset.image_size=16",
            "dataset.num_samples=60",
            "augment=cutmix",
            "images=12",
            f"output_root={tmp_path}",
        ]
    )
    assert code == 0
    path = tmp_path / capsys.readouterr().out.strip()
    assert path.name == "preview.png" and path.parent.name.endswith("_preview_synthetic")
    assert path.read_bytes().startswith(PNG)
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 100
    assert (path.parent / ".hydra" / "config.yaml").is_file()


def test_preview_honours_hydra_run_dir_and_refuses_other_hydra_settings(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    small = ["dataset=synthetic", "dataset.image_size=8", "dataset.num_samples=40", "images=4"]
    target = tmp_path / "named" / "here"
    assert main(["preview", *small, f"hydra.run.dir={target}"]) == 0
    assert capsys.readouterr().out.strip() == str(target / "preview.png")
    assert (target / "preview.png").read_bytes().startswith(PNG)
    assert not (tmp_path / "outputs").exists()  # nothing in the default place
    assert main(["preview", *small, f"hydra.run.dir={target}"]) == 2  # holds a preview: refused
    assert "already holds a run" in capsys.readouterr().err
    assert main(["preview", *small, "hydra.job.chdir=true"]) == 2
    assert "hydra.job.chdir=true" in capsys.readouterr().err


def test_preview_of_a_folder_from_the_command_line(tmp_path, monkeypatch, capsys):
    """A folder dataset with the strong augmentation; stdout is the grid's path and nothing
    else. (In-process: a program of its own, importing torch again, cost 4 s more.)"""
    root = write_folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "preview",
            "dataset=folder",
            f"dataset.root={root}",
            "augment=strong",
            "images=8",
            f"output_root={tmp_path / 'out'}",
        ]
    )
    output = capsys.readouterr()
    assert code == 0, output.err
    assert (tmp_path / output.out.strip()).read_bytes().startswith(PNG)
    assert main(["preview", "augment=strongg"]) == 2  # a typo: one line
    assert "did you mean 'strong'" in capsys.readouterr().err


def loaders_for(overrides):
    cfg = compose(overrides)
    data = build.build_dataset(cfg)
    import torch

    return make_loaders(
        data,
        cfg.data,
        batch_size=4,
        eval_batch_size=8,
        device=torch.device("cpu"),
        augment=build.build_augment(cfg),
        generator=torch.Generator().manual_seed(0),
    )


def test_auto_keeps_small_folders_in_memory_and_large_ones_on_disk(tmp_path):
    root = write_folder(tmp_path / "imgs")
    small = loaders_for(["dataset=folder", f"dataset.root={root}"])
    assert small.mode == "memory" and small.data.in_memory
    large = loaders_for(["dataset=folder", f"dataset.root={root}", "data.memory_mb=0"])
    assert large.mode == "dataloader" and isinstance(large.train, SampleLoader)
    images, labels = next(iter(large.train))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)
    assert loaders_for([*TINY, "data.loader=dataloader"]).mode == "dataloader"


def test_training_on_the_dataloader_path_with_workers_and_mixing(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=10)
    out = tmp_path / "outputs"
    code = main(
        [
            "train",
            "model=simplecnn",
            "model.widths=[8]",
            "model.hidden=16",
            "trainer.epochs=2",
            "trainer.batch_size=8",
            "dataset=folder",
            f"dataset.root={root}",
            "dataset.image_size=16",
            "data.loader=dataloader",
            "trainer.num_workers=2",
            "augment=mixup",
            "augment.mix.stop_epoch=1",
            *CPU,
            f"output_root={out}",
        ]
    )
    assert code == 0
    (summary,) = out.rglob("summary.json")
    assert json.loads(summary.read_text())["status"] == "completed"
