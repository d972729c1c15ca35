"""``imgcls eval``: score one run or an ensemble of runs on a split, with scikit-learn metrics.

Writes ``metrics.json``, ``per_class.csv``, ``confusion_matrix.csv``, ``predictions.csv``,
``probabilities.npy``, ``classification_report.txt`` and two plots into ``<run>/eval/<name>/``
(an ensemble into ``<output_root>/eval/<date>/<time>_ensemble``), and prints rich tables.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from imgcls.app.build import build_dataset
from imgcls.app.inference import check_compatible, load_run, predict_probabilities
from imgcls.base.errors import UserError, unknown_choice
from imgcls.base.folders import claim_dir, ensure_dir
from imgcls.base.runs import atomic_write, write_json
from imgcls.commands.args import as_int_list, as_list, parse_arguments, usage_lines
from imgcls.config.files import config_dir, group_options
from imgcls.evaluate import plots
from imgcls.evaluate.metrics import compute_metrics, default_topk, scalar_metrics, top_classes

EVAL_KEYS = {
    "run": "a run directory, a checkpoint file, or a list [dir,dir,...] for an ensemble",
    "checkpoint": "best (default), last or a checkpoint file",
    "split": "test (default) or val",
    "dataset": "another dataset option (dataset=synthetic); dataset.<key>=value changes one key",
    "tta": "none (default) or flip: average with the horizontally mirrored image",
    "topk": "top-k accuracies to report, e.g. topk=[1,3]; default 1, and 5 above 5 classes",
    "mode": "ensemble rule: mean (default, mean of probabilities) or vote (majority vote)",
    "out": "output folder (default <run>/eval/<name>/)",
    "device": "auto (default), cpu, cuda, cuda:N or mps",
}
SPLITS = ("test", "val")
TTA = ("none", "flip")
MODES = ("mean", "vote")


@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]
    probabilities: np.ndarray
    targets: np.ndarray


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    text = str(value)
    if text not in choices:
        raise unknown_choice(key, text, choices)
    return text


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
        if key.startswith("dataset."):
            text = ",".join(value) if isinstance(value, list) else value
            parsed = yaml.safe_load(f"[{text}]" if isinstance(value, list) else text)
            OmegaConf.update(cfg, key, parsed, force_add=True)
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
) -> EvalResult:
    """Evaluate one run (or an ensemble) and write the results; the plain function of the CLI."""
    if not runs:
        raise UserError("imgcls eval needs run=<run dir> (or run=[dir,dir] for an ensemble)")
    members = [load_run(r, checkpoint, device) for r in runs]
    cfg = dataset_config(members[0].config, dataset_overrides or {})
    data = build_dataset(cfg)
    images = getattr(data, split)
    for member in members:
        check_compatible(member, data.classes, data.channels, data.image_size)
    if len(images) == 0:
        raise UserError(f"the {split} split of {data.name} is empty")
    ks = list(topk) if topk else default_topk(data.num_classes)
    targets = images.labels.numpy()
    member_probs = [
        predict_probabilities(
            m.model, images.images, m.spec["mean"], m.spec["std"], tta=tta
        ).numpy()
        for m in members
    ]
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
    }
    if len(members) > 1:
        record["members"] = {
            _label(m, i): scalar_metrics(compute_metrics(targets, p, data.classes, ks))
            for i, (m, p) in enumerate(zip(members, member_probs, strict=True))
        }
    out_dir = Path(out) if out is not None else _output_folder(members, split, checkpoint, tta)
    write_results(out_dir, record, targets, probabilities, images.images.numpy(), data.classes)
    return EvalResult(out_dir, record, probabilities, targets)


def _output_folder(members: list[Any], split: str, checkpoint: str | Path, tta: str) -> Path:
    """``<run>/eval/<split>_<checkpoint>[_tta-X]`` for one run; a new dated folder under the
    first run's output root for an ensemble (or a bare checkpoint file)."""
    name = f"{split}_{Path(str(checkpoint)).stem}" + ("" if tta == "none" else f"_tta-{tta}")
    if len(members) == 1 and members[0].run_dir is not None:
        return members[0].run_dir / "eval" / name
    root = Path(str(members[0].config.get("output_root", "outputs")))
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    return Path(claim_dir(str(root / "eval" / f"{stamp}_ensemble")))


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
    ensure_dir(out_dir, "output folder")
    k = min(5, len(classes))
    atomic_write(
        out_dir / "predictions.csv",
        lambda f: f.write(_csv_text(prediction_rows(targets, probabilities, classes, k))),
    )
    atomic_write(out_dir / "probabilities.npy", lambda f: np.save(f, probabilities), binary=True)
    per_class = [["class", "precision", "recall", "f1", "support"]] + [
        [r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
        for r in record["per_class"]
    ]
    atomic_write(out_dir / "per_class.csv", lambda f: f.write(_csv_text(per_class)))
    matrix = [["true\\predicted", *classes]] + [
        [classes[i], *row] for i, row in enumerate(record["confusion_matrix"])
    ]
    atomic_write(out_dir / "confusion_matrix.csv", lambda f: f.write(_csv_text(matrix)))
    atomic_write(
        out_dir / "classification_report.txt", lambda f: f.write(record["classification_report"])
    )
    write_json(out_dir / "metrics.json", record)
    plots.plot_confusion_matrix(
        np.array(record["confusion_matrix"]), classes, out_dir / "confusion_matrix.png"
    )
    plots.plot_predictions(images, targets, probabilities, classes, out_dir / "predictions.png")


def print_results(result: EvalResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    record = result.metrics
    overall = scalar_metrics(record)
    table = Table(title=f"{record['split']} split of {record['dataset']}", box=None)
    table.add_column("model")
    for key in overall:
        table.add_column(key, justify="right")
    for label, values in (record.get("members") or {}).items():
        table.add_row(label, *[f"{values.get(k, float('nan')):.4f}" for k in overall])
    label = (
        f"ensemble ({record['mode']})" if record.get("members") else Path(record["runs"][0]).name
    )
    table.add_row(label, *[f"{v:.4f}" for v in overall.values()], style="bold")
    console.print(table)
    per_class = Table("class", "precision", "recall", "f1", "support", box=None, title="per class")
    for row in record["per_class"]:
        per_class.add_row(
            row["class"],
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
        )
    console.print(per_class)
    print(f"results: {result.out_dir}")


def run_eval(args: Sequence[str]) -> int:
    """``imgcls eval run=<dir>|[dir,...] [checkpoint=] [split=] [dataset=] [tta=] [topk=]``."""
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: imgcls eval run=<run dir> [key=value ...]\n\nkeys:\n" + usage_lines(EVAL_KEYS)
        )
        return 0
    options = parse_arguments(args, EVAL_KEYS, "eval", prefixes=("dataset.",))
    if "run" not in options:
        raise UserError("imgcls eval needs run=<run dir> (or run=[dir,dir] for an ensemble)")
    dataset = {k: v for k, v in options.items() if k == "dataset" or k.startswith("dataset.")}
    result = evaluate_runs(
        as_list(options["run"]),
        checkpoint=str(options.get("checkpoint", "best")),
        split=_choice(options.get("split", "test"), "split", SPLITS),
        dataset_overrides=dataset,
        tta=_choice(options.get("tta", "none"), "tta", TTA),
        topk=as_int_list(options["topk"], "topk") if "topk" in options else None,
        mode=_choice(options.get("mode", "mean"), "mode", MODES),
        out=options.get("out"),  # type: ignore[arg-type]
        device=str(options.get("device", "auto")),
    )
    print_results(result)
    return 0


def load_metrics(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
