"""Out-of-fold predictions of a k-fold sweep (``dataset.folds=K dataset.fold=0..K-1``).

Each fold run writes ``val_predictions.csv``: its validation images (the held-out fold),
each with its index in the training pool, its file (folder and table datasets), its label
and every class's probability. A sweep joins them per configuration and seed into
``oof_predictions.csv`` (every pool image predicted by the model that did not train on it)
and scores them in ``oof_metrics.json``. Everything is read back from the run folders, so
jobs may have run in other processes or on other machines; a missing or repeated fold is
reported in the metrics file, never papered over.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgcls.base.atomic import atomic_write, write_json
from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder, SweepFolder
from imgcls.config.values import is_launch_key
from imgcls.evaluate.metrics import balanced_accuracy
from imgcls.evaluate.multilabel import DEFAULT_THRESHOLD, multilabel_metrics, multilabel_scalars

LEAD = ["pool_index", "path", "target", "target_name", "prediction", "prediction_name", "correct"]
# Overrides that pick a fold or a seed: the rest make a configuration.
FOLD_KEYS = ("dataset.fold", "seed")
EPSILON = 1e-12  # the smallest probability a log loss takes


def _labels(row: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(row > 0.5)]


def fold_prediction_rows(
    pool_index: Sequence[int],
    paths: Sequence[str] | None,
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
) -> list[list[Any]]:
    """Header and rows of val_predictions.csv: pool index, file (or empty), label and
    prediction (class indices, ``;``-joined label sets for multi-hot rows at 0.5) with their
    names, whether the prediction is right, then one probability column per class."""
    header = [*LEAD, *(f"p_{name}" for name in classes)]
    rows: list[list[Any]] = [header]
    multilabel = np.asarray(targets).ndim == 2
    for i, (target, probs) in enumerate(zip(targets, probabilities, strict=True)):
        if multilabel:
            truth = _labels(np.asarray(target))
            guess = _labels(probs >= DEFAULT_THRESHOLD)
            label, predicted = ";".join(map(str, truth)), ";".join(map(str, guess))
            names = ";".join(classes[c] for c in truth), ";".join(classes[c] for c in guess)
            correct = truth == guess
        else:
            truth_i, guess_i = int(target), int(np.argmax(probs))
            label, predicted = str(truth_i), str(guess_i)
            names = classes[truth_i], classes[guess_i]
            correct = truth_i == guess_i
        path = paths[i] if paths is not None else ""
        row = [int(pool_index[i]), path, label, names[0], predicted, names[1], int(correct)]
        rows.append(row + [repr(float(p)) for p in probs])
    return rows


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_fold_predictions(
    path: Path,
    pool_index: Sequence[int],
    paths: Sequence[str] | None,
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
) -> Path:
    """A fold run's val_predictions.csv (:func:`fold_prediction_rows`), written atomically."""
    text = _csv_text(fold_prediction_rows(pool_index, paths, targets, probabilities, classes))
    atomic_write(path, lambda f: f.write(text))
    return path


@dataclass
class FoldPredictions:
    """val_predictions.csv read back: pool indices, files, labels and probabilities."""

    pool_index: np.ndarray  # (N,) int
    paths: list[str]
    targets: np.ndarray  # (N,) class indices, or (N, C) multi-hot rows
    probabilities: np.ndarray  # (N, C)


def read_fold_predictions(path: Path, classes: Sequence[str], multilabel: bool) -> FoldPredictions:
    """A val_predictions.csv; one that is missing or malformed is a UserError naming it."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        if header[: len(LEAD)] != LEAD or len(header) != len(LEAD) + len(classes):
            raise ValueError("unexpected columns")
        index = np.array([int(r[0]) for r in body], dtype=np.int64)
        probabilities = np.array([[float(v) for v in r[len(LEAD) :]] for r in body])
        probabilities = probabilities.reshape(len(body), len(classes))
        if multilabel:
            targets = np.zeros((len(body), len(classes)), dtype=np.float32)
            for i, r in enumerate(body):
                for c in filter(None, r[2].split(";")):
                    targets[i, int(c)] = 1.0
        else:
            targets = np.array([int(r[2]) for r in body], dtype=np.int64)
    except (OSError, ValueError, IndexError) as error:
        raise UserError(f"{path} is not a readable val_predictions.csv ({error})") from error
    return FoldPredictions(index, [r[1] for r in body], targets, probabilities)


@dataclass
class FoldRun:
    """One completed fold run: where it is and what its summary says about its split."""

    folder: RunFolder
    configuration: tuple[str, ...]  # its overrides without the fold, the seed and Hydra's
    seed: int
    folds: int
    fold: int
    split_hash: str | None
    pool_images: int | None
    classes: list[str]
    multilabel: bool


def fold_run(folder: RunFolder) -> FoldRun | None:
    """``folder`` as a fold run, or None: not completed, unreadable, or trained without folds."""
    try:
        summary = folder.read_summary()
        overrides = folder.read_overrides()
    except UserError:
        return None
    data = summary.data or {}
    if summary.status != "completed" or not data.get("folds") or summary.classes is None:
        return None
    configuration = tuple(
        o.text
        for o in overrides
        if not o.is_hydra and o.key not in FOLD_KEYS and not is_launch_key(o.key)
    )
    return FoldRun(
        folder,
        configuration,
        int(summary.seed or 0),
        int(data["folds"]),
        int(data.get("fold", 0)),
        data.get("split_hash"),
        data.get("pool_images"),
        list(summary.classes),
        data.get("task") == "multilabel",
    )


def _scores(targets: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    """Out-of-fold figures: accuracy, balanced accuracy and log loss of single-label
    predictions; the multi-label figures at 0.5 (mAP, F1s, subset accuracy) otherwise."""
    if len(targets) == 0:
        return {}
    if targets.ndim == 2:
        scalars = multilabel_scalars(multilabel_metrics(targets, probabilities, classes))
        return {k: round(v, 6) for k, v in scalars.items()}
    predictions = probabilities.argmax(axis=1)
    chosen = probabilities[np.arange(len(targets)), targets].clip(EPSILON, 1.0)
    return {
        "accuracy": round(float((predictions == targets).mean()), 6),
        "balanced_accuracy": round(balanced_accuracy(targets, predictions), 6),
        "loss": round(float(-np.log(chosen).mean()), 6),
    }


def _one_seed(runs: list[FoldRun]) -> tuple[dict[str, Any], list[list[Any]]]:
    """The record and oof_predictions.csv rows of one configuration and seed."""
    first = runs[0]
    folds = first.folds
    present = sorted(r.fold for r in runs)
    missing = sorted(set(range(folds)) - set(present))
    repeated = sorted({f for f in present if present.count(f) > 1})
    hashes = sorted({str(r.split_hash) for r in runs})
    parts = [
        (r, read_fold_predictions(r.folder.val_predictions_csv, r.classes, r.multilabel))
        for r in sorted(runs, key=lambda r: r.fold)
    ]
    rows: list[list[Any]] = []
    for run, part in parts:
        body = fold_prediction_rows(
            part.pool_index, part.paths, part.targets, part.probabilities, first.classes
        )[1:]
        rows += [[run.fold, run.folder.path.name, *row] for row in body]
    rows.sort(key=lambda row: row[2])  # by pool index
    index = np.concatenate([p.pool_index for _, p in parts])
    targets = np.concatenate([p.targets for _, p in parts])
    probabilities = np.concatenate([p.probabilities for _, p in parts])
    seen = np.unique(index)
    problems = []
    if missing:
        problems.append(f"missing fold(s) {', '.join(map(str, missing))} of {folds}")
    if repeated:
        problems.append(f"fold(s) {', '.join(map(str, repeated))} ran more than once")
    if len(hashes) > 1:
        problems.append(f"the runs were cut by different splits ({', '.join(hashes)})")
    if len(seen) != len(index):
        problems.append(f"{len(index) - len(seen)} pool image(s) predicted more than once")
    if first.pool_images is not None and len(seen) != first.pool_images:
        problems.append(f"{len(seen)} of the {first.pool_images} pool images predicted")
    record: dict[str, Any] = {
        "seed": first.seed,
        "complete": not problems,
        "folds_present": sorted(set(present)),
        "missing_folds": missing,
        "images": int(len(index)),
        "runs": [r.folder.path.name for r, _ in parts],
        **_scores(targets, probabilities, first.classes),
    }
    if problems:
        record["problems"] = problems
    return record, rows


def _mean(records: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Mean, standard deviation (n >= 2) and n of each figure over the seeds."""
    figures: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in records if isinstance(r.get(key), float)]
        if not values:
            continue
        figures[key] = {
            "mean": round(statistics.fmean(values), 6),
            "std": round(statistics.stdev(values), 6) if len(values) > 1 else None,
            "n": len(values),
        }
    return figures


def out_of_fold(folders: Sequence[RunFolder]) -> tuple[dict[str, Any], list[list[Any]]] | None:
    """oof_metrics.json's record and oof_predictions.csv's rows for the fold runs among
    ``folders`` (one group per configuration, then per seed), or None without fold runs.

    A configuration is named by its overrides that the others do not share (``all`` when
    the sweep has one); its full list of overrides is in the record."""
    runs = [r for r in (fold_run(f) for f in folders) if r is not None]
    if not runs:
        return None
    classes = runs[0].classes
    if any(r.classes != classes for r in runs):
        raise UserError("the fold runs have different classes: their predictions cannot be joined")
    groups: dict[tuple[tuple[str, ...], int], list[FoldRun]] = {}
    for run in runs:
        groups.setdefault((run.configuration, run.folds), []).append(run)
    shared = set.intersection(*(set(configuration) for configuration, _ in groups))
    configurations = []
    header = ["configuration", "seed", "fold", "run", *LEAD, *(f"p_{c}" for c in classes)]
    table: list[list[Any]] = [header]
    for (configuration, folds), members in groups.items():
        seeds: dict[int, list[FoldRun]] = {}
        for run in members:
            seeds.setdefault(run.seed, []).append(run)
        records = []
        name = " ".join(o for o in configuration if o not in shared) or "all"
        for seed in sorted(seeds):
            record, rows = _one_seed(seeds[seed])
            records.append(record)
            table += [[name, seed, *row] for row in rows]
        keys = [k for k in records[0] if isinstance(records[0][k], float)]
        configurations.append(
            {
                "configuration": name,
                "overrides": list(configuration),
                "folds": folds,
                "complete": all(r["complete"] for r in records),
                "seeds": records,
                "mean": _mean(records, keys),
            }
        )
    return {"classes": classes, "configurations": configurations}, table


def write_out_of_fold(out_dir: Path, folders: Sequence[RunFolder]) -> list[Path]:
    """oof_predictions.csv and oof_metrics.json in ``out_dir`` (a sweep folder) from the fold
    runs among ``folders``; nothing when there are none."""
    found = out_of_fold(folders)
    if found is None:
        return []
    record, table = found
    sweep = SweepFolder(out_dir)
    text = _csv_text(table)
    atomic_write(sweep.oof_predictions_csv, lambda f: f.write(text))
    write_json(sweep.oof_metrics_json, record)
    return [sweep.oof_predictions_csv, sweep.oof_metrics_json]


def headline(record: dict[str, Any]) -> list[str]:
    """One line per configuration: its out-of-fold accuracy (mAP for several labels per
    image) over the seeds, flagged when a fold is missing."""
    lines = []
    for entry in record["configurations"]:
        figure = "map" if "map" in entry["mean"] else "accuracy"  # several labels: mAP
        value = entry["mean"].get(figure)
        if value is None:
            continue
        spread = "" if value["std"] is None or math.isnan(value["std"]) else f" ± {value['std']}"
        state = "" if entry["complete"] else " (INCOMPLETE: see oof_metrics.json)"
        lines.append(
            f"out-of-fold {figure} {value['mean']}{spread} (n={value['n']}) "
            f"for {entry['configuration']}{state}"
        )
    return lines
