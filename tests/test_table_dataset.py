"""dataset=table: a CSV/TSV label table of one's own images, with one or several labels per
image, split and group columns; bad tables are one line and exit 2 before any folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CPU

from imgcls.app import build
from imgcls.base.errors import UserError
from imgcls.cli import main
from imgcls.config.compose import compose
from imgcls.data.pipeline import make_loaders
from imgcls.data.splits import cut_split, require_classes, strata, stratified_split
from imgcls.data.targets import MULTILABEL
from imgcls.registry import DATASETS

MODEL = [
    "model=simplecnn",
    "model.widths=[8]",
    "model.hidden=16",
    "trainer.epochs=1",
    "trainer.batch_size=8",
    "dataset.image_size=8",
    "dataset.channels=1",
    "dataset.stats_images=4",
    *CPU,
]


def write_images(folder: Path, count: int, labels: list[str] | None = None) -> list[str]:
    """``count`` 8x8 grayscale PNGs (brightness by label), named img<i>.png."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        level = 0 if labels is None else 40 * (hash(labels[i]) % 4)
        pixels = np.clip(rng.integers(0, 60, (8, 8)) + level, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i}.png")
        names.append(f"img{i}.png")
    return names


def write_table(
    folder: Path, header: list[str], rows: list[list[str]], name: str = "labels.csv"
) -> Path:
    delimiter = "\t" if name.endswith(".tsv") else ","
    text = "\n".join(delimiter.join(row) for row in [header, *rows]) + "\n"
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def single_label(folder: Path, count: int = 24, extra: dict[str, list[str]] | None = None) -> Path:
    """A table of ``count`` images of classes a, b, c (and columns ``extra``)."""
    labels = ["abc"[i % 3] for i in range(count)]
    names = write_images(folder, count, labels)
    extra = extra or {}
    rows = [
        [n, lab, *(v[i] for v in extra.values())]
        for i, (n, lab) in enumerate(zip(names, labels, strict=True))
    ]
    return write_table(folder, ["image", "label", *extra], rows)


def build_table(**options) -> object:
    return DATASETS.build(
        "table", {"stats_images": 4, "image_size": 8, **options}, prefix="dataset"
    )


def refused(capsys, tmp_path: Path, *overrides: str) -> str:
    """Train on a table that must be refused: exit 2, one line, no folder under output_root."""
    out = tmp_path / "outputs"
    code = main(["train", *MODEL, "dataset=table", f"output_root={out}", *overrides])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert err.startswith("imgcls: error: ") and "\n" not in err, err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists() or list(out.rglob("*")) == [], "a run folder was left"
    return err


def build_refused(**options) -> str:
    """Build a table the builder must refuse (the cases the CLI tests do not repeat): one
    UserError line (the CLI makes it exit 2 before any run folder, as the tests above show)."""
    with pytest.raises(UserError) as info:
        build_table(**options)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


# ---- bad tables: one case each ------------------------------------------------------------


def test_missing_column_suggests_the_closest_header_name(capsys, tmp_path):
    table = single_label(tmp_path)
    err = refused(capsys, tmp_path, f"dataset.path={table}", "dataset.label_col=lable")
    assert f"dataset.label_col=lable is not a column of {table}" in err
    assert "did you mean 'label'?" in err and "columns: image, label" in err


def test_missing_split_and_group_columns_are_named(tmp_path):
    table = single_label(tmp_path)
    err = build_refused(path=str(table), group_col="patient")
    assert "dataset.group_col=patient is not a column" in err
    err = build_refused(path=str(table), split_col="fold", image_col="file")
    assert "dataset.image_col=file is not a column" in err  # the first missing name


def test_missing_image_files_say_how_many_and_name_the_first(capsys, tmp_path):
    table = single_label(tmp_path, count=24)
    for i in range(5):
        (tmp_path / f"img{i}.png").unlink()
    err = refused(capsys, tmp_path, f"dataset.path={table}")
    assert f"5 of the 24 image files listed in {table} not found" in err
    assert "img0.png, img1.png, img2.png, ... (2 more)" in err


def test_empty_label_cell_names_its_line(capsys, tmp_path):
    names = write_images(tmp_path, 6)
    rows = [[n, "ab"[i % 2]] for i, n in enumerate(names)]
    rows[3][1] = "  "
    table = write_table(tmp_path, ["image", "label"], rows)
    err = refused(capsys, tmp_path, f"dataset.path={table}")
    assert f"empty label cell in {table}, line 5 (column 'label')" in err


def test_unknown_split_values_say_which_and_what_is_valid(capsys, tmp_path):
    splits = ["train"] * 20 + ["dev", "holdout", "test", "test"]
    table = single_label(tmp_path, extra={"split": splits})
    err = refused(capsys, tmp_path, f"dataset.path={table}", "dataset.split_col=split")
    assert "unknown value(s) 'dev', 'holdout' in column 'split'" in err
    assert "valid: train, val, test" in err


def test_duplicate_paths_are_named_with_their_lines(capsys, tmp_path):
    names = write_images(tmp_path, 6)
    rows = [[n, "ab"[i % 2]] for i, n in enumerate(names)] + [["./img2.png", "a"]]
    table = write_table(tmp_path, ["image", "label"], rows)
    err = refused(capsys, tmp_path, f"dataset.path={table}")
    assert f"1 duplicate image path(s) in {table}: ./img2.png (lines 4 and 8)" in err


def test_a_class_without_training_images_is_named(capsys, tmp_path):
    labels = ["a", "b"] * 8 + ["c", "c"]
    names = write_images(tmp_path, len(labels), labels)
    splits = ["train"] * 16 + ["test", "test"]
    table = write_table(
        tmp_path,
        ["image", "label", "split"],
        [list(r) for r in zip(names, labels, splits, strict=True)],
    )
    err = refused(capsys, tmp_path, f"dataset.path={table}", "dataset.split_col=split")
    assert f"class(es) c of {table} have no training image" in err


def test_explicit_classes_must_hold_every_label_found(capsys, tmp_path):
    table = single_label(tmp_path)
    err = refused(capsys, tmp_path, f"dataset.path={table}", "dataset.classes=[a,b]")
    assert f"label(s) c in {table} are not in dataset.classes (a, b)" in err


def test_an_explicit_class_with_no_image_is_refused(tmp_path):
    table = single_label(tmp_path)
    err = build_refused(path=str(table), classes=["a", "b", "c", "d"])
    assert "class(es) d of" in err and "have no training image" in err


def test_empty_table(capsys, tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("\n")
    err = refused(capsys, tmp_path, f"dataset.path={table}")
    assert f"the label table {table} is empty" in err
    table.write_text("image,label\n\n")
    err = build_refused(path=str(table))
    assert f"the label table {table} has a header (image, label) but no rows" in err


def test_undecodable_table(capsys, tmp_path):
    table = tmp_path / "labels.csv"
    table.write_bytes("image,label\nimg0.png,caf\u00e9\n".encode("latin-1"))
    err = refused(capsys, tmp_path, f"dataset.path={table}")
    assert f"cannot read the label table {table}: byte 24 is not UTF-8 text" in err


def test_unreadable_or_absent_table(tmp_path):
    assert "the label table is not found" in build_refused(path=str(tmp_path / "none.csv"))
    assert "the label table is a folder" in build_refused(path=str(tmp_path))
    assert "dataset.path is required for dataset=table" in build_refused()
    table = tmp_path / "labels.csv"
    table.write_text('image,label\n"img0.png"x,a\n')
    assert f"cannot read the label table {table}, line 2" in build_refused(path=str(table))
    table.write_bytes(b"image,label\n\x00\x01,a\n")
    assert "it holds NUL bytes, not text" in build_refused(path=str(table))


def test_several_labels_in_a_one_label_task(tmp_path):
    names = write_images(tmp_path, 6)
    rows = [[n, "a;b" if i == 2 else "ab"[i % 2]] for i, n in enumerate(names)]
    table = write_table(tmp_path, ["image", "label"], rows)
    err = build_refused(path=str(table), label_delim=";", task="multiclass")
    assert "line 4 has 2 labels (a, b) but dataset.task=multiclass" in err


# ---- splits --------------------------------------------------------------------------------


def test_a_split_column_is_kept_exactly(tmp_path):
    splits = [["train", "val", "test", "training"][i % 4] for i in range(36)]
    table = single_label(tmp_path, count=36, extra={"part": splits})
    data = build_table(
        path=str(table),
        split_col="part",
        split_values={"train": "train", "training": "train", "val": "val", "test": "test"},
    )
    names = {s: [Path(p).name for p in getattr(data, s).paths] for s in ("train", "val", "test")}
    expected = {s: [] for s in names}
    for i, split in enumerate(splits):
        expected["train" if split == "training" else split].append(f"img{i}.png")
    assert names == expected


def test_a_split_column_without_val_gets_val_cut_from_train_only(tmp_path):
    splits = ["test" if i % 4 == 0 else "train" for i in range(48)]
    table = single_label(tmp_path, count=48, extra={"split": splits})
    data = build_table(path=str(table), split_col="split", val_fraction=0.25)
    test = {Path(p).name for p in data.test.paths}
    assert test == {f"img{i}.png" for i in range(0, 48, 4)}
    assert len(data.val) == 9 and len(data.train) == 27  # a quarter of the 36 train rows


@pytest.mark.parametrize("with_split_column", [False, True])
def test_a_group_never_straddles_two_splits(with_split_column, tmp_path):
    count = 90
    groups = [f"patient{i // 3}" for i in range(count)]  # 30 groups of 3 images
    extra = {"patient": groups}
    if with_split_column:  # test given by whole groups; val cut by groups from train
        extra["split"] = ["test" if (i // 3) % 5 == 0 else "train" for i in range(count)]
    table = single_label(tmp_path, count=count, extra=extra)
    options = {"path": str(table), "group_col": "patient"}
    if with_split_column:
        options["split_col"] = "split"
    data = build_table(**options)
    by_name = dict(zip((f"img{i}.png" for i in range(count)), groups, strict=True))
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        files = getattr(data, split).paths
        assert files, split
        for path in files:
            group = by_name[Path(path).name]
            assert seen.setdefault(group, split) == split, f"{group} in {seen[group]} and {split}"
    assert sum(len(s) for s in (data.train, data.val, data.test)) == count


def test_a_split_column_that_puts_a_group_in_two_splits_is_refused(tmp_path):
    splits = ["train"] * 20 + ["test"] * 4
    table = single_label(tmp_path, extra={"split": splits, "site": ["s0"] * 24})
    err = build_refused(path=str(table), split_col="split", group_col="site")
    assert "group 's0' (column 'site')" in err and "in both the train and the test split" in err


# ---- several labels per image ---------------------------------------------------------------


def multilabel_table(folder: Path, count: int = 40, name: str = "labels.tsv") -> tuple[Path, list]:
    sets = [
        sorted({"cat", ["dog", "bird", "fish"][i % 3], *(["tree"] if i % 2 else [])})
        for i in range(count)
    ]
    sets = [s if i % 5 else s[1:] for i, s in enumerate(sets)]  # some without cat
    names = write_images(folder, count)
    rows = [[n, " | ".join(s)] for n, s in zip(names, sets, strict=True)]
    return write_table(folder, ["file", "tags"], rows, name=name), sets


def test_a_label_delimiter_gives_multi_hot_rows_and_task_multilabel(tmp_path):
    table, sets = multilabel_table(tmp_path)
    data = build_table(path=str(table), image_col="file", label_col="tags", label_delim="|")
    assert data.task == MULTILABEL and data.spec()["task"] == MULTILABEL
    assert data.classes == ["bird", "cat", "dog", "fish", "tree"]
    for split in (data.train, data.val, data.test):
        assert split.labels.dtype == torch.float32 and split.labels.shape[1] == 5
        for path, row in zip(split.paths, split.labels.tolist(), strict=True):
            expected = sets[int(Path(path).stem[3:])]
            assert [c for c, v in zip(data.classes, row, strict=True) if v == 1.0] == expected
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 40


def test_multi_hot_rows_reach_both_data_paths(tmp_path):
    table, _ = multilabel_table(tmp_path)
    overrides = [
        "dataset=table",
        f"dataset.path={table}",
        "dataset.image_col=file",
        "dataset.label_col=tags",
        "dataset.label_delim=|",
        "dataset.image_size=8",
        "dataset.stats_images=4",
        *CPU,
    ]
    for loader in ("memory", "dataloader"):
        cfg = compose([*overrides, f"data.loader={loader}"])
        data = build.build_dataset(cfg)
        loaders = make_loaders(
            data,
            cfg.data,
            batch_size=4,
            eval_batch_size=8,
            device=torch.device("cpu"),
            augment=None,
            generator=torch.Generator().manual_seed(0),
        )
        assert loaders.mode == loader
        images, labels = next(iter(loaders.train))
        assert images.shape == (4, 3, 8, 8)
        assert labels.shape == (4, 5) and labels.dtype == torch.float32
        assert set(labels.unique().tolist()) <= {0.0, 1.0}


def test_task_multilabel_without_a_delimiter_gives_one_hot_rows(tmp_path):
    table = single_label(tmp_path)
    data = build_table(path=str(table), task="multilabel")
    assert data.task == MULTILABEL and data.train.labels.shape[1] == 3
    assert data.train.labels.sum(1).eq(1).all()


def test_multi_hot_splits_are_stratified_by_the_rarest_label():
    labels = np.zeros((40, 3), dtype=np.float32)
    labels[:, 0] = 1  # every image: class 0
    labels[::4, 2] = 1  # 10 images also carry the rare class 2
    labels[1::4, 1] = 1
    assert strata(labels).tolist()[:4] == [2, 1, 0, 0]
    rest, cut = cut_split("t", labels, 0.5, seed=0)
    assert labels[cut, 2].sum() == 5 and labels[rest, 2].sum() == 5
    train, val, test = stratified_split(labels, 0.25, 0.25, seed=0)
    assert sorted([*train, *val, *test]) == list(range(40))
    require_classes("t", labels, ["x", "y", "z"])
    lonely = labels.copy()
    lonely[[4, 8, 12], 2] = 0
    lonely[:, 1] = 0  # label 1 on one image: a stratum of one, so the cut is unstratified
    lonely[5, 1] = 1
    rest, cut = cut_split("t", lonely, 0.5, seed=0)
    assert len(rest) + len(cut) == 40


# ---- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", ["memory", "dataloader"])
def test_training_on_a_single_label_table(loader, tmp_path):
    names = write_images(tmp_path / "images", 24, ["abc"[i % 3] for i in range(24)])
    rows = [[f"images/{n}", "abc"[i % 3]] for i, n in enumerate(names)]
    table = write_table(tmp_path, ["image", "label"], rows, name="labels.txt")  # sniffed
    table.write_text(table.read_text().replace(",", "\t"))
    out = tmp_path / "outputs"
    code = main(
        [
            "train",
            *MODEL,
            "dataset=table",
            f"dataset.path={table}",
            f"data.loader={loader}",
            f"output_root={out}",
        ]
    )
    assert code == 0
    (summary,) = out.rglob("summary.json")
    record = json.loads(summary.read_text())
    assert record["status"] == "completed"
    assert record["data"]["classes"] == ["a", "b", "c"] and record["data"]["name"] == "table"
    if loader == "memory":  # eval rebuilds the table's splits from files
        assert main(["eval", f"run={summary.parent}", f"out={tmp_path / 'eval'}"]) == 0
        assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["split"] == "test"


def test_training_on_a_multi_label_table(tmp_path):
    table, _ = multilabel_table(tmp_path)
    out = tmp_path / "outputs"
    code = main(
        [
            "train",
            *MODEL,
            "dataset=table",
            f"dataset.path={table}",
            "dataset.image_col=file",
            "dataset.label_col=tags",
            "dataset.label_delim=|",
            f"output_root={out}",
        ]
    )
    assert code == 0
    (summary,) = out.rglob("summary.json")
    record = json.loads(summary.read_text())
    assert record["status"] == "completed" and record["data"]["task"] == MULTILABEL
    assert 0.0 <= record["test"]["map"] <= 1.0  # mean average precision, multi-label only
