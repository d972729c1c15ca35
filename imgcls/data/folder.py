"""``folder``: a user's own images, one sub-folder per class (PNG, JPEG, ... of any size/mode).

Two layouts: ``root/<class>/*.png`` (validation and test splits are cut stratified), or
``root/train/<class>/...`` with optional ``root/val/<class>/...`` and ``root/test/<class>/...``
(missing ones are cut from train). The file list is scanned here; images are decoded later,
all at once into memory or per sample by DataLoader workers (``data.loader``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from imgcls.base.errors import UserError
from imgcls.config.options.datasets import FolderOptions
from imgcls.data.files import EXTENSIONS, FileSet
from imgcls.data.splits import DataSplits, cut_split, from_splits, require_classes
from imgcls.registry import DATASETS

LAYOUT = (
    "one sub-folder of images per class, or train/ (and val/, test/) sub-folders of class folders"
)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[str]:
    """Image files at any depth under ``folder``, sorted; symlinked folders are not followed.

    os.scandir gives each entry's type with the listing, so 70,000 files cost no stat each
    (a run that reads the decode cache would otherwise spend most of its data time here).
    """
    found: list[str] = []
    pending = [str(folder)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except PermissionError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif (
                not entry.name.startswith(".")
                and entry.name.lower().endswith(EXTENSIONS)
                and entry.is_file()
            ):
                found.append(entry.path)
    return sorted(found)


def scan(
    folder: Path, classes: list[str] | None, channels: int, size: int
) -> tuple[FileSet, list[str]]:
    """The images under ``folder/<class>/``; ``classes`` fixes the label order (from train)."""
    dirs = _class_dirs(folder)
    if not dirs:
        raise UserError(f"no class folders in {folder}: expected {LAYOUT}")
    names = [d.name for d in dirs]
    if classes is None:
        classes = names
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise UserError(
            f"class folder(s) {', '.join(unknown)} in {folder} are not in the training classes "
            f"({', '.join(classes)})"
        )
    paths: list[str] = []
    labels: list[int] = []
    for directory in dirs:
        found = _images(directory)
        if not found:
            raise UserError(
                f"class folder {directory} has no images (looked for {', '.join(EXTENSIONS)})"
            )
        paths += found
        labels += [classes.index(directory.name)] * len(found)
    return FileSet(paths, torch.tensor(labels, dtype=torch.int64), channels, size), classes


@DATASETS.register("folder", FolderOptions)
def folder(options: FolderOptions) -> DataSplits:
    """The images under ``options.root``, read from their files per batch."""
    root, image_size, channels = options.root, options.image_size, options.channels
    val_fraction, test_fraction, split_seed = (
        options.val_fraction,
        options.test_fraction,
        options.split_seed,
    )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(
            f"dataset.root={root} is not a folder ({base.resolve()}): expected {LAYOUT}"
        )
    if (base / "train").is_dir():
        train, classes = scan(base / "train", None, channels, image_size)
        val = (
            scan(base / "val", classes, channels, image_size)[0]
            if (base / "val").is_dir()
            else None
        )
        test = (
            scan(base / "test", classes, channels, image_size)[0]
            if (base / "test").is_dir()
            else None
        )
    else:
        train, classes = scan(base, None, channels, image_size)
        val = test = None
    labels = train.labels.numpy()
    require_classes("folder", labels, classes)
    if test is None:
        rest, cut = cut_split("folder", labels, test_fraction, split_seed, what="test")
        train, test = train.subset(rest), train.subset(cut)
        val_fraction = val_fraction / (1.0 - test_fraction)  # of all images, as documented
    return from_splits(
        "folder",
        train,
        test,
        classes,
        val_fraction,
        split_seed,
        val=val,
        stats_sample=options.stats_images,
    )
