"""The decode cache: image files decoded once, read memory-mapped by later runs, rebuilt when
the files or the decoding options change, never trusted when damaged, never a failure."""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FOLDER_MODEL
from PIL import Image

import imgcls.data.files as files
from imgcls.cli import main
from imgcls.data import cache
from imgcls.data.files import FileSet
from imgcls.data.folder import scan


def write_pngs(root: Path, per_class: int = 6, side: int = 12) -> Path:
    """Two class folders of RGB PNGs, each image a different flat colour."""
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour = (40 * k + 10 * i, 200 - 20 * i, 30 * k)
            Image.new("RGB", (side, side + 4), colour).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The paths decoded from their files (the decoder patched to count)."""
    seen: list[str] = []
    real = files.read_image

    def counting(path: str, channels: int, size: int) -> np.ndarray:
        seen.append(path)
        return real(path, channels, size)

    monkeypatch.setattr(files, "read_image", counting)
    return seen


def file_set(root: Path, folder: Path, channels: int = 3, size: int = 8) -> FileSet:
    with cache.using(cache.CacheSettings(True, folder)):
        return scan(root, None, channels, size)[0]


def entries(folder: Path) -> list[Path]:
    return sorted((folder / "decoded").glob("*")) if (folder / "decoded").exists() else []


def test_second_build_reads_the_entry_and_decodes_nothing(tmp_path, decodes):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    first = file_set(root, folder).materialize(build_cache=True)
    assert len(decodes) == 12 and len(entries(folder)) == 1
    decodes.clear()
    second = file_set(root, folder).materialize(build_cache=True)
    assert decodes == []
    assert np.array_equal(first.images.numpy(), second.images.numpy())
    part = file_set(root, folder).subset(np.array([1, 7, 9])).materialize()  # a split: its rows
    assert decodes == [] and np.array_equal(part.images.numpy(), first.images.numpy()[[1, 7, 9]])


def test_a_changed_file_rebuilds_the_entry(tmp_path, decodes):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    file_set(root, folder).materialize(build_cache=True)
    changed = root / "b" / "2.png"
    Image.new("RGB", (12, 16), (255, 0, 255)).save(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    decodes.clear()
    images = file_set(root, folder).materialize(build_cache=True).images.numpy()
    assert len(decodes) == 12 and len(entries(folder)) == 2
    assert (images[8, :, 0, 0] == [255, 0, 255]).all()  # the new pixels, not the cached ones


@pytest.mark.parametrize("changed", [{"size": 6}, {"channels": 1}])
def test_other_decoding_options_rebuild_the_entry(tmp_path, decodes, changed):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    file_set(root, folder).materialize(build_cache=True)
    decodes.clear()
    images = file_set(root, folder, **changed).materialize(build_cache=True).images
    assert len(decodes) == 12 and len(entries(folder)) == 2
    assert images.shape[1] == changed.get("channels", 3)
    assert images.shape[2] == changed.get("size", 8)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path, decodes, damage):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    good = file_set(root, folder).materialize(build_cache=True).images.numpy()
    (entry,) = entries(folder)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF  # one pixel, same size
    else:
        data = bytearray(b"not an array at all")
    entry.write_bytes(bytes(data))
    decodes.clear()
    again = file_set(root, folder).materialize(build_cache=True).images.numpy()
    assert len(decodes) == 12 and np.array_equal(again, good)
    decodes.clear()
    file_set(root, folder).materialize(build_cache=True)  # the rebuilt entry is whole
    assert decodes == []


def test_two_builders_at_once_leave_one_whole_entry(tmp_path, monkeypatch):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    sets = [file_set(root, folder), file_set(root, folder)]
    both = threading.Barrier(2)
    real = cache.atomic_write

    def together(*args, **kwargs):
        both.wait(timeout=30)  # both have decoded and now write at the same moment
        real(*args, **kwargs)

    monkeypatch.setattr(cache, "atomic_write", together)
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.materialize(True).images.numpy()))
        for s in sets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and np.array_equal(results[0], results[1])
    (entry,) = entries(folder)  # one entry, no temporary file left
    assert entry.suffix == ".npy"
    fresh = file_set(root, folder).cache
    assert np.array_equal(fresh.lookup(verify=True), results[0])


def test_the_dataloader_path_reads_an_entry_but_never_builds_one(tmp_path, decodes):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    lazy = file_set(root, folder)
    first = lazy.read(3)
    assert len(decodes) == 1 and entries(folder) == []
    whole = file_set(root, folder).materialize(build_cache=True).images
    decodes.clear()
    reader = file_set(root, folder).subset(np.array([5, 3]))
    assert np.array_equal(reader.read(1).numpy(), first.numpy()) and decodes == []
    assert np.array_equal(reader.read(0).numpy(), whole[5].numpy())
    worker = pickle.loads(pickle.dumps(reader))  # as a DataLoader worker gets it
    assert worker.cache._array is None  # it maps the entry itself, found by the key sent
    assert np.array_equal(worker.read(0).numpy(), whole[5].numpy()) and decodes == []


def test_a_disk_without_room_warns_and_caches_nothing(tmp_path, decodes, monkeypatch, caplog):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    full = SimpleNamespace(total=2**30, used=2**30 - 2**20, free=2**20)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: full)
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        images = file_set(root, folder).materialize(build_cache=True).images
    assert images.shape == (12, 3, 8, 8) and entries(folder) == []
    assert caplog.text.count("decode cache:") == 1 and "MB free" in caplog.text


def train(tmp_path: Path, root: Path, *overrides: str) -> tuple[int, dict]:
    out = tmp_path / "outputs"
    code = main(
        ["train", *FOLDER_MODEL, "dataset=folder", f"dataset.root={root}", f"output_root={out}"]
        + list(overrides)
    )
    summaries = sorted(out.rglob("summary.json"), key=lambda p: p.stat().st_mtime_ns)
    return code, json.loads(summaries[-1].read_text()) if summaries else {}


def test_a_second_run_decodes_nothing(tmp_path, decodes, monkeypatch):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(folder))
    code, summary = train(tmp_path, root)
    assert code == 0 and len(entries(folder)) == 1
    assert len(decodes) >= 12 and summary["timings"]["data"] > 0
    decodes.clear()
    code, _ = train(tmp_path, root, "trainer.epochs=1")
    assert code == 0 and decodes == []


def test_data_cache_false_writes_no_cache(tmp_path, monkeypatch):
    root, folder = write_pngs(tmp_path / "images"), tmp_path / "cache"
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(folder))
    code, _ = train(tmp_path, root, "data.cache=false")
    assert code == 0 and not folder.exists()


def test_an_unwritable_cache_folder_is_one_warning(tmp_path, capsys):
    root = write_pngs(tmp_path / "images")
    blocked = tmp_path / "a-file"  # not a folder: no one (root included) can write under it
    blocked.write_text("")
    code, summary = train(tmp_path, root, f"data.cache_dir={blocked}")
    captured = capsys.readouterr()
    assert code == 0 and summary["test"], captured.err
    warnings = [
        line for line in (captured.out + captured.err).splitlines() if "decode cache" in line
    ]
    assert len(warnings) == 1 and f"cannot write {blocked}" in warnings[0]


def test_the_folder_listing_keeps_its_rules(tmp_path):
    """The file list the cache is keyed by (listed with os.scandir): image files at any depth,
    any case of extension, symlinked files; no hidden files, other files or linked folders."""
    from imgcls.data.folder import _images

    (tmp_path / "c" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("c/a.png", "c/deep/B.JPG", "c/deep/er/c.webp", "elsewhere/d.png"):
        Image.new("L", (4, 4)).save(tmp_path / name)
    (tmp_path / "c" / ".hidden.png").write_bytes((tmp_path / "c" / "a.png").read_bytes())
    (tmp_path / "c" / "notes.txt").write_text("not an image")
    (tmp_path / "c" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "c" / "link.png").symlink_to(tmp_path / "elsewhere" / "d.png")
    (tmp_path / "c" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    found = [Path(p).relative_to(tmp_path / "c").as_posix() for p in _images(tmp_path / "c")]
    assert found == ["a.png", "deep/B.JPG", "deep/er/c.webp", "link.png"]


def test_a_table_dataset_is_decoded_once_too(tmp_path, decodes):
    """dataset=table holds its images as a FileSet: the second build reads the entry."""
    from imgcls.registry import DATASETS

    root = write_pngs(tmp_path / "images")
    rows = [
        f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))
    ]
    (root / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    options = {"path": str(root / "labels.csv"), "image_size": 8, "stats_images": 4}

    def build():
        with cache.using(cache.CacheSettings(True, tmp_path / "cache")):
            return DATASETS.build("table", options, prefix="dataset").materialize()

    first = build()
    assert len(decodes) >= 12 and len(entries(tmp_path / "cache")) == 1
    decodes.clear()
    second = build()
    assert decodes == [] and np.array_equal(first.train.images, second.train.images)
