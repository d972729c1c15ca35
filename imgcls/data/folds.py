"""K-fold cross-validation for every dataset (``dataset.folds=K dataset.fold=i``).

The training pool is what a dataset's loader returns as train and validation, joined (train
rows first); it is cut into K folds, fold ``i`` becomes the validation split and the others
the training split. The test split is never touched. The folds are stratified by class
(scikit-learn's StratifiedKFold), keep groups whole when the dataset has them
(StratifiedGroupKFold) and balance every label when an image may carry several
(iterative stratification, :func:`iterative_folds`), all shuffled with ``split_seed``: the split is a pure function of the dataset, K, the fold and the seed, and
:func:`split_hash` names it.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import replace

import numpy as np

from imgcls.base.errors import UserError
from imgcls.data.splits import DataSplits, FoldSplit, strata, training_stats


def fold_assignment(
    labels: np.ndarray,
    folds: int,
    seed: int,
    groups: np.ndarray | None = None,
    classes: list[str] | None = None,
) -> np.ndarray:
    """(N,) the fold (0..K-1) that validates each pool image.

    ``labels`` are class indices (N,) or multi-hot rows (N, C); ``groups`` (N,) keeps each
    group in one fold. A class (or label) with fewer than K images, or fewer groups than K,
    is a one-line UserError.
    """
    labels = np.asarray(labels)
    _check_enough(labels, folds, groups, classes)
    order = np.zeros((len(labels), 1))  # the splitters read only the labels and groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" warnings
        if groups is not None:
            from sklearn.model_selection import StratifiedGroupKFold

            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            parts = splitter.split(order, strata(labels), np.asarray(groups))
        elif labels.ndim == 2:
            return iterative_folds(labels > 0.5, folds, seed)
        else:
            from sklearn.model_selection import StratifiedKFold

            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            parts = splitter.split(order, labels)
        assignment = np.full(len(labels), -1, dtype=np.int64)
        for fold, (_, held_out) in enumerate(parts):
            assignment[held_out] = fold
    return assignment


def iterative_folds(positive: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) the fold of each multi-hot row, by iterative stratification (Sechidis, Tsoumakas
    and Vlahavas, 2011): the rarest label still unassigned is dealt out first, each of its
    images to the fold that most lacks that label (then the fold that most lacks images;
    remaining ties at random), so that every label's images spread evenly over the folds.
    Rows without a label fill the folds that most lack images.

    Our own ~30 lines rather than the ``iterative-stratification`` package, whose wheel
    installs a top-level ``tests`` package into site-packages (shadowing a user's own
    ``tests/``).
    """
    rng = np.random.default_rng(seed)
    positive = np.asarray(positive, dtype=bool)
    rows = len(positive)
    wanted = np.full(folds, rows / folds)  # images each fold still lacks
    wanted_label = np.outer(np.full(folds, 1.0 / folds), positive.sum(axis=0))  # (K, L)
    assignment = np.full(rows, -1, dtype=np.int64)
    left = positive.copy()  # the labels of the rows not yet assigned
    while left.any():
        counts = left.sum(axis=0)
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = int(rng.choice(rarest))
        for row in rng.permutation(np.flatnonzero(left[:, label])):
            need = wanted_label[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[wanted[best] == wanted[best].max()]
            fold = int(rng.choice(best))
            assignment[row] = fold
            wanted[fold] -= 1
            wanted_label[fold] -= positive[row]
            left[row] = False
    for row in rng.permutation(np.flatnonzero(assignment < 0)):  # rows without a label
        best = np.flatnonzero(wanted == wanted.max())
        fold = int(rng.choice(best))
        assignment[row] = fold
        wanted[fold] -= 1
    return assignment


def _check_enough(
    labels: np.ndarray, folds: int, groups: np.ndarray | None, classes: list[str] | None
) -> None:
    """Each fold's validation needs an image of every class, and a group of its own."""
    counts = (labels > 0.5).sum(axis=0) if labels.ndim == 2 else np.bincount(labels)
    present = np.flatnonzero(counts > 0)
    rare = [int(c) for c in present if counts[c] < folds]
    if rare:
        name = classes[rare[0]] if classes is not None else str(rare[0])
        raise UserError(
            f"class '{name}' has {int(counts[rare[0]])} images in the training pool "
            f"({len(rare)} class(es) have fewer than {folds}): too few for dataset.folds={folds}; "
            "use fewer folds"
        )
    if groups is not None and len(np.unique(groups)) < folds:
        raise UserError(
            f"the training pool has {len(np.unique(groups))} groups: too few for "
            f"dataset.folds={folds} (each fold needs whole groups); use fewer folds"
        )


def split_hash(assignment: np.ndarray, labels: np.ndarray) -> str:
    """A short sha256 of the fold assignment and the labels of the pool: two runs (on any
    machine) with the same hash validated on the same images."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(assignment, dtype="<i8").tobytes())
    labels = np.asarray(labels)
    digest.update(str(labels.shape).encode())
    kind = "<f4" if labels.ndim == 2 else "<i8"
    digest.update(np.ascontiguousarray(labels, dtype=kind).tobytes())
    return digest.hexdigest()[:16]


def apply_folds(
    data: DataSplits, folds: int, fold: int, seed: int, stats_sample: int | None = None
) -> DataSplits:
    """``data`` with train and validation recut: validation = fold ``fold`` of the pool
    (train + validation), train = the other folds; the test split is kept as it is and the
    normalisation statistics are taken from the new training split (a sample of
    ``stats_sample`` images for image files, as the loaders do)."""
    pool = data.train.join(data.val)
    labels = pool.labels.numpy()
    assignment = fold_assignment(labels, folds, seed, data.groups, data.classes)
    val_index = np.flatnonzero(assignment == fold)
    train_index = np.flatnonzero(assignment != fold)
    train, val = pool.subset(train_index), pool.subset(val_index)
    mean, std = training_stats(train, seed, stats_sample)
    paths = getattr(val, "paths", None)
    split = FoldSplit(
        folds=folds,
        fold=fold,
        split_seed=seed,
        split_hash=split_hash(assignment, labels),
        pool_images=len(labels),
        val_index=val_index,
        val_paths=list(paths) if paths is not None else None,
    )
    groups = None
    if data.groups is not None:
        groups = np.concatenate([data.groups[train_index], data.groups[val_index]])
    return replace(data, train=train, val=val, mean=mean, std=std, groups=groups, folds=split)
