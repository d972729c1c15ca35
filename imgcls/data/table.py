"""``table``: a user's own images listed in a CSV or TSV label table.

A row per image: its path (relative to ``dataset.root``, by default the table's folder) and
its label, or several labels in one cell split by ``label_delim`` (multi-hot rows, task
``multilabel``). An optional split column fixes each image's split exactly; a missing
validation or test split is cut from train as the folder dataset does, of whole groups when
a group column is given (scikit-learn's group splitters), so no group straddles two splits.

Everything about the table is checked here, before any image is decoded: columns, cells,
split values, duplicate and missing files, classes. The images themselves form a
:class:`~imgcls.data.files.FileSet`, decoded into memory or read by DataLoader workers.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import SPLITS, TableOptions
from imgcls.data.files import FileSet
from imgcls.data.splits import DataSplits, cut_split, from_splits, group_cut
from imgcls.data.table_file import Table, read_table
from imgcls.data.targets import MULTICLASS, MULTILABEL
from imgcls.registry import DATASETS

SHOWN = 3  # names quoted in an error before "..."


def _some(names: list[str]) -> str:
    more = f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _label_sets(table: Table, options: TableOptions) -> list[list[str]]:
    """Each row's labels; an empty cell, or several labels for a one-label task, is refused."""
    cells = table.column("label_col", options.label_col)
    sets: list[list[str]] = []
    for cell, line in zip(cells, table.lines, strict=True):
        if options.label_delim is None:
            labels = [cell] if cell else []
        else:
            labels = list(dict.fromkeys(p.strip() for p in cell.split(options.label_delim)))
            labels = [label for label in labels if label]
        if not labels:
            raise UserError(
                f"empty label cell in {table.path}, line {line} (column '{options.label_col}'): "
                "every image needs a label"
            )
        if len(labels) > 1 and not options.multilabel:
            raise UserError(
                f"{table.path}, line {line} has {len(labels)} labels ({', '.join(labels)}) but "
                "dataset.task=multiclass takes one per image: use dataset.task=multilabel"
            )
        sets.append(labels)
    return sets


def _splits(table: Table, options: TableOptions) -> list[str] | None:
    """Each row's split (train, val or test) from the split column, or None without one."""
    if options.split_col is None:
        return None
    given = options.split_values or {s: s for s in SPLITS}
    mapping = {str(value): str(split) for value, split in given.items()}
    cells = table.column("split_col", options.split_col)
    unknown = sorted({cell for cell in cells if cell not in mapping})
    if unknown:
        shown = ", ".join(f"'{value}'" for value in unknown[:SHOWN])
        more = f" ({len(unknown)} values)" if len(unknown) > SHOWN else ""
        raise UserError(
            f"unknown value(s) {shown}{more} in column '{options.split_col}' of {table.path}: "
            f"valid: {', '.join(mapping)} (dataset.split_values maps values to train, val, test)"
        )
    return [mapping[cell] for cell in cells]


def _paths(table: Table, options: TableOptions) -> list[str]:
    """Each row's image file, resolved; duplicates and missing files are refused."""
    base = Path(options.root).expanduser() if options.root else table.path.parent
    if options.root and not base.is_dir():
        raise UserError(f"dataset.root={options.root} is not a folder ({base.resolve()})")
    cells = table.column("image_col", options.image_col)
    for cell, line in zip(cells, table.lines, strict=True):
        if not cell:
            raise UserError(
                f"empty image cell in {table.path}, line {line} (column '{options.image_col}')"
            )
    paths = [os.path.normpath(base / Path(cell).expanduser()) for cell in cells]
    seen: dict[str, int] = {}
    twice: list[str] = []
    for cell, path, line in zip(cells, paths, table.lines, strict=True):
        if path in seen:
            twice.append(f"{cell} (lines {seen[path]} and {line})")
        seen.setdefault(path, line)
    if twice:
        raise UserError(f"{len(twice)} duplicate image path(s) in {table.path}: {_some(twice)}")
    missing = [cell for cell, path in zip(cells, paths, strict=True) if not os.path.isfile(path)]
    if missing:
        raise UserError(
            f"{len(missing)} of the {len(cells)} image files listed in {table.path} not found "
            f"under {base}: {_some(missing)}"
        )
    return paths


def _classes(table: Table, options: TableOptions, sets: list[list[str]]) -> list[str]:
    found = sorted({label for labels in sets for label in labels})
    if options.classes is None:
        return found
    classes = [str(c) for c in options.classes]
    extra = [label for label in found if label not in classes]
    if extra:
        raise UserError(
            f"label(s) {_some(extra)} in {table.path} are not in dataset.classes "
            f"({', '.join(classes)}): add them, or set dataset.classes=null for the labels found"
        )
    return classes


def _targets(sets: list[list[str]], classes: list[str], multilabel: bool) -> torch.Tensor:
    index = {name: i for i, name in enumerate(classes)}
    if not multilabel:
        return torch.tensor([index[labels[0]] for labels in sets], dtype=torch.int64)
    hot = torch.zeros(len(sets), len(classes), dtype=torch.float32)
    for row, labels in enumerate(sets):
        hot[row, [index[label] for label in labels]] = 1.0
    return hot


def _require_training_images(path: Path, labels: torch.Tensor, classes: list[str]) -> None:
    """Every class needs a training image (a class the model never sees cannot be learnt)."""
    counts = labels.sum(0) if labels.ndim == 2 else torch.bincount(labels, minlength=len(classes))
    absent = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if absent:
        raise UserError(
            f"class(es) {_some(absent)} of {path} have no training image: give them training "
            "rows, or leave them out of dataset.classes"
        )


def _cut(
    options: TableOptions,
    labels: torch.Tensor,
    groups: np.ndarray | None,
    fraction: float,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    if groups is None:
        return cut_split("table", labels.numpy(), fraction, options.split_seed, what=what)
    return group_cut("table", labels.numpy(), groups, fraction, options.split_seed, what=what)


def _group_straddles(table: Table, options: TableOptions, groups: np.ndarray, splits: list[str]):
    where: dict[str, str] = {}
    for group, split in zip(groups.tolist(), splits, strict=True):
        if where.setdefault(group, split) != split:
            raise UserError(
                f"group '{group}' (column '{options.group_col}') of {table.path} is in both the "
                f"{where[group]} and the {split} split: a group must stay in one split"
            )


@DATASETS.register("table", TableOptions)
def table(options: TableOptions) -> DataSplits:
    """The images a label table lists, split as its split column says or cut stratified."""
    if options.path is None:
        raise UserError(
            "dataset.path is required for dataset=table: the CSV or TSV label table "
            "(dataset.path=labels.csv)"
        )
    contents = read_table(Path(options.path).expanduser())
    for key in ("image_col", "label_col", "split_col", "group_col"):  # every name first
        if getattr(options, key) is not None:
            contents.column(key, getattr(options, key))
    sets = _label_sets(contents, options)
    splits = _splits(contents, options)
    groups = (
        None
        if options.group_col is None
        else np.asarray(contents.column("group_col", options.group_col), dtype=object)
    )
    paths = _paths(contents, options)
    classes = _classes(contents, options, sets)
    multilabel = options.multilabel
    labels = _targets(sets, classes, multilabel)
    everything = FileSet(paths, labels, options.channels, options.image_size)
    if splits is not None and groups is not None:
        _group_straddles(contents, options, groups, splits)
    given = {
        name: np.flatnonzero(np.asarray(splits) == name) if splits is not None else None
        for name in SPLITS
    }
    if splits is None:
        given["train"] = np.arange(len(paths))
    if given["train"] is None or len(given["train"]) == 0:
        raise UserError(
            f"no training rows in {contents.path}: column '{options.split_col}' names no image "
            "as train"
        )
    _require_training_images(contents.path, labels[given["train"]], classes)
    pool = given["train"]
    val_fraction = options.val_fraction
    test = given["test"] if given["test"] is not None and len(given["test"]) else None
    if test is None:
        take = groups[pool] if groups is not None else None
        rest, cut = _cut(options, labels[pool], take, options.test_fraction, "test")
        pool, test = pool[rest], pool[cut]
        val_fraction = val_fraction / (1.0 - options.test_fraction)  # of all images
    val = given["val"] if given["val"] is not None and len(given["val"]) else None
    if val is None:
        take = groups[pool] if groups is not None else None
        rest, cut = _cut(options, labels[pool], take, val_fraction, "val")
        pool, val = pool[rest], pool[cut]
    _require_training_images(contents.path, labels[pool], classes)
    data = from_splits(
        "table",
        everything.subset(pool),
        everything.subset(test),
        classes,
        val_fraction,
        options.split_seed,
        val=everything.subset(val),
        stats_sample=options.stats_images,
        task=MULTILABEL if multilabel else MULTICLASS,
    )
    if groups is None:
        return data
    return replace(data, groups=np.concatenate([groups[pool], groups[val]]))  # k-fold's
