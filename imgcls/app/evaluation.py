"""Scoring one run or an ensemble of runs on a split, with scikit-learn metrics (``imgcls eval``).

Writes ``metrics.json``, ``per_class.csv``, ``confusion_matrix.csv``, ``predictions.csv``,
``probabilities.npy``, ``classification_report.txt`` and two plots into ``<run>/eval/<name>/``
(an ensemble into ``<output_root>/eval/<date>/<time>_ensemble``), and prints rich tables.

A multi-label run is scored on its sigmoid probabilities at the thresholds its checkpoint
stores (tuned on validation; 0.5 each where there are none) by
:func:`imgcls.evaluate.multilabel.multilabel_metrics`, and writes ``metrics.json``,
``per_class.csv`` (with each label's AP and threshold), ``predictions.csv`` (label sets and
every probability) and ``probabilities.npy``; a confusion matrix and top-k do not apply.

``cam=true`` (one run) adds ``cam.png``: Grad-CAM of the most confident mistakes and correct
answers under the evaluation's probabilities (:mod:`imgcls.app.cam`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from imgcls.app.build import build_dataset
from imgcls.app.cam import cam_layer, check_cam, write_cam_panel
from imgcls.app.inference import LoadedRun, check_compatible, load_run, predict_probabilities
from imgcls.base.errors import UserError, unknown_choice
from imgcls.base.folders import check_output_dir, claim_dir, writing_into, written_by_imgcls
from imgcls.base.record import EvalFolder, RunFolder
from imgcls.base.runs import atomic_write, write_json
from imgcls.config.files import config_dir, group_options
from imgcls.data.targets import MULTILABEL
from imgcls.evaluate import calibration as calib
from imgcls.evaluate import multilabel, plots
from imgcls.evaluate.metrics import compute_metrics, default_topk, scalar_metrics, top_classes

SPLITS = ("test", "val")
TTA = ("none", "flip")
MODES = ("mean", "vote")


@dataclass
class EvalResult:
    """What :func:`evaluate_runs` wrote and computed: the folder, metrics.json's record, the
    (ensembled) probabilities and the targets."""

    out_dir: Path
    metrics: dict[str, Any]
    probabilities: np.ndarray
    targets: np.ndarray


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    text = str(value)
    if text not in choices:
        raise unknown_choice(key, text, choices)
    return text


def check_topk(topk: Sequence[int] | None) -> list[int] | None:
    """The distinct k of ``topk``, sorted; None (the default for the class count) if none."""
    if topk is None:
        return None
    numbers = [int(k) for k in topk]
    if not numbers or any(k < 1 for k in numbers):
        raise UserError(f"topk={numbers} is invalid: every k must be at least 1")
    return sorted(set(numbers))


def dataset_config(base: Any, overrides: dict[str, Any]) -> Any:
    """The run's dataset config, with ``dataset=<option>`` and ``dataset.key=value`` applied."""

    cfg = OmegaConf.create(OmegaConf.to_container(base, resolve=True))
    if "dataset" in overrides:
        option = str(overrides["dataset"])
        if option not in group_options("dataset"):
            raise unknown_choice("dataset", option, group_options("dataset"))
        node = OmegaConf.load(config_dir() / "dataset" / f"{option}.yaml")
        node.pop("defaults", None)  # the schema it extends: its options class has the defaults
        cfg.dataset = node
    for key, value in overrides.items():
        if key.startswith("dataset."):  # typed as Hydra's override grammar reads it
            OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def evaluate_runs(
    runs: Sequence[str | Path],
    checkpoint: str = "best",
    split: str = "test",
    dataset_overrides: dict[str, Any] | None = None,
    tta: str = "none",
    topk: Sequence[int] | None = None,
    mode: str = "mean",
    out: str | Path | None = None,
    device: str = "auto",
    cam: bool | str = False,
    calibrate: str = "none",
) -> EvalResult:
    """Evaluate one run (or an ensemble) and write the results; the plain function of the CLI.

    ``dataset_overrides`` holds ``dataset=<option>`` and ``dataset.<key>=<value>`` (typed
    values); the choices (split, tta, mode, calibrate, cam) and topk are checked before any
    run is loaded. Each member's logits are divided by its stored temperature (1.0 when it
    has none); ``calibrate=temperature`` first fits that temperature on the run's validation
    split and stores it (:func:`imgcls.app.calibration.calibrate_loaded`). ``cam=true`` adds
    cam.png (:func:`write_eval_cam`).
    """
    if not runs:
        raise UserError("imgcls eval needs run=<run dir> (or run=[dir,dir] for an ensemble)")
    split = _choice(split, "split", SPLITS)
    tta = _choice(tta, "tta", TTA)
    mode = _choice(mode, "mode", MODES)
    calibrate = calib.check_method(calibrate)
    topk = check_topk(topk)
    cam = check_eval_cam(cam, runs)
    if out is not None:  # a folder of the user's: new, empty or an earlier evaluation's
        check_output_dir(out, "out", is_eval_output)
    members = [load_run(r, checkpoint, device) for r in runs]
    task = check_task(members, topk)
    if split == "val":
        check_one_fold(members)
    if cam:
        cam_layer(members[0])  # a model Grad-CAM cannot explain is refused before any work
    if calibrate == "temperature":
        from imgcls.app.calibration import check_target

        check_target(runs, members, checkpoint)
    cfg = dataset_config(members[0].config, dataset_overrides or {})
    data = build_dataset(cfg)
    images = getattr(data, split).materialize()  # a folder or table split is files until now
    for member in members:
        check_compatible(member, data.classes, data.channels, data.image_size, data.task)
    if len(images) == 0:
        raise UserError(f"the {split} split of {data.name} is empty")
    targets = images.labels.numpy()
    unscaled = None
    if calibrate == "temperature":  # T from the run's own validation split, then stored
        unscaled = _fit_temperature(members[0], data, cfg, dataset_overrides, images, tta)
    member_probs = [
        predict_probabilities(
            m.model,
            images.images,
            m.spec["mean"],
            m.spec["std"],
            tta=tta,
            task=task,
            temperature=m.temperature,
        ).numpy()
        for m in members
    ]
    if task == MULTILABEL:
        result = _evaluate_multilabel(
            members, member_probs, targets, data, split, checkpoint, tta, mode, out
        )
        return write_eval_cam(result, members[0], images.images) if cam else result
    ks = list(topk) if topk else default_topk(data.num_classes)
    probabilities = combine(member_probs, mode)
    metrics = compute_metrics(targets, probabilities, data.classes, ks)
    record: dict[str, Any] = {
        "runs": [str(m.run_dir or m.checkpoint) for m in members],
        "checkpoints": [str(m.checkpoint) for m in members],
        "split": split,
        "dataset": data.name,
        "tta": tta,
        "classes": list(data.classes),
        **({"mode": mode} if len(members) > 1 else {}),
        **metrics,
        **calibration_fields(members, targets, probabilities, mode),
    }
    if unscaled is not None:
        record["calibration"] = _calibration_block(
            members[0], split, targets, unscaled, probabilities
        )
    if len(members) > 1:
        record["members"] = {
            _label(m, i): scalar_metrics(compute_metrics(targets, p, data.classes, ks))
            for i, (m, p) in enumerate(zip(members, member_probs, strict=True))
        }
    out_dir = Path(out) if out is not None else _output_folder(members, split, checkpoint, tta)
    write_results(out_dir, record, targets, probabilities, images.images.numpy(), data.classes)
    result = EvalResult(out_dir, record, probabilities, targets)
    return write_eval_cam(result, members[0], images.images) if cam else result


def check_eval_cam(cam: bool | str, runs: Sequence[str | Path]) -> bool:
    """``cam=true|false`` as a bool; true with an ensemble (no one model to explain) is a
    UserError."""
    wanted = check_cam(cam)
    if wanted and len(runs) > 1:
        raise UserError(
            f"cam=true explains one run's model, and run= names {len(runs)}: "
            "evaluate the members one at a time for their Grad-CAM panels"
        )
    return wanted


def write_eval_cam(result: EvalResult, member: LoadedRun, images: Any) -> EvalResult:
    """cam.png in the evaluation's folder: Grad-CAM of the most confident mistakes and
    correct answers under its probabilities (:mod:`imgcls.app.cam`)."""
    write_cam_panel(
        member,
        images.cpu().numpy(),
        result.targets,
        result.probabilities,
        EvalFolder(result.out_dir).cam_png,
    )
    return result


def check_task(members: Sequence[LoadedRun], topk: Sequence[int] | None) -> str:
    """The members' one task; an ensemble of single- and multi-label runs, or ``topk`` for
    a multi-label run (whose images have label sets, not a ranking), is a UserError."""
    tasks = sorted({m.task for m in members})
    if len(tasks) > 1:
        raise UserError(
            f"run= mixes {' and '.join(tasks)} runs: an ensemble needs members of one task"
        )
    if tasks[0] == MULTILABEL and topk is not None:
        raise UserError(
            "topk= applies to single-label runs: a multi-label run is scored by mAP and by "
            "F1 at its thresholds (leave topk out)"
        )
    return tasks[0]


def check_one_fold(members: Sequence[LoadedRun]) -> None:
    """Members of different k-fold folds have no common validation split (each trained on
    the others' validation images): their ensemble is scored on the test split."""
    folds = {
        (OmegaConf.select(m.config, "dataset.folds"), OmegaConf.select(m.config, "dataset.fold"))
        for m in members
    }
    if len(folds) > 1:
        raise UserError(
            "split=val: the runs validated on different k-fold folds, so each member trained "
            "on the others' validation images; use split=test (the sweep's "
            "oof_predictions.csv holds the out-of-fold predictions)"
        )


def _evaluate_multilabel(
    members: Sequence[LoadedRun],
    member_probs: Sequence[np.ndarray],
    targets: np.ndarray,
    data: Any,
    split: str,
    checkpoint: str,
    tta: str,
    mode: str,
    out: str | Path | None,
) -> EvalResult:
    """Score multi-label runs at their checkpoints' thresholds and write the results."""
    thresholds = [m.thresholds for m in members]
    probabilities, applied = combine_multilabel(member_probs, thresholds, mode)
    metrics = multilabel.multilabel_metrics(targets, probabilities, data.classes, applied)
    record: dict[str, Any] = {
        "runs": [str(m.run_dir or m.checkpoint) for m in members],
        "checkpoints": [str(m.checkpoint) for m in members],
        "split": split,
        "dataset": data.name,
        "tta": tta,
        "task": MULTILABEL,
        "classes": list(data.classes),
        "thresholds": [float(t) for t in applied],
        **({"mode": mode} if len(members) > 1 else {}),
        **metrics,
        **calibration_fields(members, targets, probabilities, mode),
    }
    if len(members) > 1:
        record["members"] = {
            _label(m, i): multilabel.multilabel_scalars(
                multilabel.multilabel_metrics(targets, p, data.classes, t)
            )
            for i, (m, p, t) in enumerate(zip(members, member_probs, thresholds, strict=True))
        }
    out_dir = Path(out) if out is not None else _output_folder(members, split, checkpoint, tta)
    write_multilabel_results(out_dir, record, targets, probabilities, data.classes)
    return EvalResult(out_dir, record, probabilities, targets)


def calibration_fields(
    members: Sequence[LoadedRun], targets: np.ndarray, probabilities: np.ndarray, mode: str
) -> dict[str, Any]:
    """metrics.json's calibration figures of the evaluated probabilities: the temperature(s)
    applied, ECE, MCE, NLL, Brier score and the reliability table (15 bins). A vote gives
    vote fractions, not probabilities: no figures then."""
    temperatures = [m.temperature for m in members]
    applied: dict[str, Any] = (
        {"temperature": temperatures[0]} if len(members) == 1 else {"temperatures": temperatures}
    )
    if mode == "vote" and len(members) > 1:
        return applied
    table = calib.reliability(targets, probabilities).to_dict()
    return {**applied, **calib.calibration_figures(targets, probabilities), "reliability": table}


def _fit_temperature(
    member: LoadedRun,
    data: Any,
    cfg: Any,
    dataset_overrides: dict[str, Any] | None,
    images: Any,
    tta: str,
) -> np.ndarray:
    """``calibrate=temperature``: fit T on the run's validation split (its own dataset
    config, whatever split is evaluated) and store it; returns the evaluated split's
    probabilities before scaling, for the before/after record."""
    from imgcls.app.calibration import calibrate_loaded

    unscaled = predict_probabilities(
        member.model, images.images, member.spec["mean"], member.spec["std"], tta=tta
    ).numpy()
    own = data if not dataset_overrides else build_dataset(dataset_config(member.config, {}))
    calibrate_loaded(member, own.val.materialize())
    return unscaled


def _calibration_block(
    member: LoadedRun,
    split: str,
    targets: np.ndarray,
    unscaled: np.ndarray,
    scaled: np.ndarray,
) -> dict[str, Any]:
    """The ``calibration`` record of ``eval calibrate=temperature`` (also written into the
    run's summary.json): T, and the evaluated split's figures before and after scaling."""
    from imgcls.app.calibration import TEMPERATURE, record_in_summary

    block = calib.calibration_record(
        TEMPERATURE,
        member.temperature,
        split,
        calib.calibration_figures(targets, unscaled),
        calib.calibration_figures(targets, scaled),
    )
    if member.run_dir is not None:
        record_in_summary(member.run_dir, block)
    block["before_reliability"] = calib.reliability(targets, unscaled).to_dict()
    return block


def combine_multilabel(
    probabilities: Sequence[np.ndarray], thresholds: Sequence[Any], mode: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """A multi-label ensemble's probabilities and the thresholds that decide its labels.

    ``mean``: the mean of the members' probabilities, cut at the mean of their thresholds
    (one run: its own). ``vote``: the fraction of members that predict each label at their
    own thresholds, cut at 0.5 (a label at least half the members give).
    """
    if mode == "mean" or len(probabilities) == 1:
        return np.stack(probabilities).mean(axis=0), np.stack(thresholds).mean(axis=0)
    votes = np.stack(
        [multilabel.predict_labels(p, t) for p, t in zip(probabilities, thresholds, strict=True)]
    ).mean(axis=0)
    return votes, np.full(votes.shape[1], multilabel.DEFAULT_THRESHOLD)


def _output_folder(members: list[Any], split: str, checkpoint: str | Path, tta: str) -> Path:
    """``<run>/eval/<split>_<checkpoint>[_tta-X]`` for one run; a new dated folder under the
    first run's output root for an ensemble (or a bare checkpoint file)."""
    name = f"{split}_{Path(str(checkpoint)).stem}" + ("" if tta == "none" else f"_tta-{tta}")
    if len(members) == 1 and members[0].run_dir is not None:
        return RunFolder.of(members[0].run_dir).eval_folder(name)
    root = Path(str(members[0].config.get("output_root", "outputs")))
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    return Path(claim_dir(str(root / "eval" / f"{stamp}_ensemble")))


def is_eval_output(folder: Path) -> bool:
    """True for a folder holding an earlier evaluation (its metrics.json, as imgcls writes
    it), whose files a new evaluation may replace."""
    return written_by_imgcls(EvalFolder(folder).metrics_json, b'{\n  "runs": [')


def _label(member: Any, index: int) -> str:
    return f"{index}:{member.name}"


def combine(probabilities: Sequence[np.ndarray], mode: str = "mean") -> np.ndarray:
    """Ensemble rule: the mean of the members' probabilities, or a majority vote.

    A vote returns the fraction of members voting for each class (ties go to the class with
    the higher mean probability), so the top-k columns stay meaningful.
    """
    stacked = np.stack(probabilities)
    mean = stacked.mean(axis=0)
    if mode == "mean" or len(probabilities) == 1:
        return mean
    votes = np.zeros_like(mean)
    for probs in stacked:
        votes[np.arange(len(probs)), probs.argmax(axis=1)] += 1.0
    votes /= len(stacked)
    return votes + 1e-6 * mean  # tie-break by the mean probability


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def prediction_rows(
    targets: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], k: int
) -> list[list[Any]]:
    """Header and rows of predictions.csv: index, target, prediction, top-k with probabilities."""

    top = top_classes(probabilities, k)
    header = ["index", "target", "target_name", "prediction", "prediction_name", "correct"]
    for i in range(1, k + 1):
        header += [f"top{i}_class", f"top{i}_name", f"top{i}_probability"]
    rows: list[list[Any]] = [header]
    for index, (target, classes_k) in enumerate(zip(targets, top, strict=True)):
        prediction = int(classes_k[0])
        row: list[Any] = [
            index,
            int(target),
            classes[target],
            prediction,
            classes[prediction],
            int(prediction == target),
        ]
        for c in classes_k:
            row += [int(c), classes[c], repr(float(probabilities[index, c]))]
        rows.append(row)
    return rows


def write_results(
    out_dir: Path,
    record: dict[str, Any],
    targets: np.ndarray,
    probabilities: np.ndarray,
    images: np.ndarray,
    classes: Sequence[str],
) -> None:
    """Write the record (metrics.json) and its tables, predictions, probabilities and two
    plots into ``out_dir``, each file atomically; if one fails, none stays."""
    folder = EvalFolder(out_dir)
    k = min(5, len(classes))
    per_class = [["class", "precision", "recall", "f1", "support"]] + [
        [r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
        for r in record["per_class"]
    ]
    matrix = [["true\\predicted", *classes]] + [
        [classes[i], *row] for i, row in enumerate(record["confusion_matrix"])
    ]
    texts = {
        folder.predictions_csv: _csv_text(prediction_rows(targets, probabilities, classes, k)),
        folder.per_class_csv: _csv_text(per_class),
        folder.confusion_matrix_csv: _csv_text(matrix),
        folder.classification_report_txt: record["classification_report"],
    }
    with writing_into(out_dir) as written:
        for path, text in texts.items():
            written.append(path)
            atomic_write(path, lambda f, text=text: f.write(text))
        written.append(folder.probabilities_npy)
        atomic_write(folder.probabilities_npy, lambda f: np.save(f, probabilities), binary=True)
        written += [folder.confusion_matrix_png, folder.predictions_png, folder.metrics_json]
        plots.plot_confusion_matrix(
            np.array(record["confusion_matrix"]), classes, folder.confusion_matrix_png
        )
        plots.plot_predictions(images, targets, probabilities, classes, folder.predictions_png)
        if "reliability" in record:
            written.append(folder.reliability_png)
            plots.plot_reliability(reliability_panels(record), folder.reliability_png)
        write_json(folder.metrics_json, record)  # last: the record of a complete evaluation


def write_multilabel_results(
    out_dir: Path,
    record: dict[str, Any],
    targets: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
) -> None:
    """A multi-label evaluation's files: per_class.csv (precision, recall, F1, AP, support
    and threshold of each label), predictions.csv (label sets at the record's thresholds and
    every probability), probabilities.npy and metrics.json, each atomically; if one fails,
    none stays."""
    folder = EvalFolder(out_dir)
    columns = ["class", "precision", "recall", "f1", "ap", "support", "threshold"]
    per_class = [columns] + [[row[c] for c in columns] for row in record["per_label"]]
    rows = multilabel.prediction_rows(targets, probabilities, classes, record["thresholds"])
    texts = {folder.predictions_csv: _csv_text(rows), folder.per_class_csv: _csv_text(per_class)}
    with writing_into(out_dir) as written:
        for path, text in texts.items():
            written.append(path)
            atomic_write(path, lambda f, text=text: f.write(text))
        written.append(folder.probabilities_npy)
        atomic_write(folder.probabilities_npy, lambda f: np.save(f, probabilities), binary=True)
        if "reliability" in record:
            written.append(folder.reliability_png)
            plots.plot_reliability(reliability_panels(record), folder.reliability_png)
        written.append(folder.metrics_json)
        write_json(folder.metrics_json, record)  # last: the record of a complete evaluation


def reliability_panels(record: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The panels of an evaluation's reliability.png: the probabilities before scaling when
    this evaluation fitted the temperature, then the evaluated ones (at the stored T)."""
    panels = []
    block = record.get("calibration") or {}
    if "before_reliability" in block:
        panels.append(("before scaling", block["before_reliability"], block["before"]))
    t = record.get("temperature")
    title = f"{record['split']} split" + (f", T = {t:.3f}" if isinstance(t, float) else "")
    panels.append((title, record["reliability"], record))
    return panels
