"""``imgcls eval run=<dir>|[<dir>,...] [key=value ...]``: parse, evaluate, print the tables.

The work is :func:`imgcls.app.evaluation.evaluate_runs`; the results go into
``<run>/eval/<split>_<checkpoint>/`` (an ensemble: a new dated folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgcls.app.evaluation import EvalResult, evaluate_runs
from imgcls.config.arguments import Grammar, Key, Kind, wants_help
from imgcls.evaluate.metrics import scalar_metrics
from imgcls.evaluate.multilabel import multilabel_scalars

# The multi-label figures eval prints (all are in metrics.json), and their column names.
MULTILABEL_COLUMNS = {
    "map": "mAP",
    "f1_micro": "micro F1",
    "f1_macro": "macro F1",
    "subset_accuracy": "subset accuracy",
    "hamming_loss": "Hamming loss",
}

EVAL = Grammar(
    "eval",
    {
        "run": Key(
            "a run directory, a checkpoint file, or a list [dir,dir,...] for an ensemble",
            Kind.TEXTS,
        ),
        "checkpoint": Key("best (default), last or a checkpoint file"),
        "split": Key("test (default) or val"),
        "dataset": Key(
            "another dataset option (dataset=synthetic); dataset.<key>=value changes one key"
        ),
        "tta": Key("none (default) or flip: average with the horizontally mirrored image"),
        "topk": Key(
            "top-k accuracies to report, e.g. topk=[1,3]; default 1, and 5 above 5 classes",
            Kind.INTS,
        ),
        "mode": Key("ensemble rule: mean (default, mean of probabilities) or vote (majority vote)"),
        "out": Key("output folder (default <run>/eval/<name>/)"),
        "device": Key("auto (default), cpu, cuda, cuda:N or mps"),
        "cam": Key(
            "true: also write cam.png, Grad-CAM of the most confident mistakes and correct "
            "answers (one run)"
        ),
        "calibrate": Key(
            "none (default: apply the temperature the run stores, if any) or temperature: "
            "fit it on the run's validation split first and store it (best.pt, summary.json)"
        ),
    },
    prefixes=("dataset.",),
)
USAGE = """usage: imgcls eval run=<run dir> [key=value ...]

Values follow imgcls train's grammar: quote what holds spaces or commas (out='my eval/'),
lists in brackets (run=[a,b], topk=[1,5]).

keys:
"""


def run_eval(args: Sequence[str]) -> int:
    """``imgcls eval run=<dir>|[dir,...] [checkpoint=] [split=] [dataset=] [tta=] [topk=]``."""
    if wants_help(args):
        print(USAGE + EVAL.usage())
        return 0
    options = EVAL.parse(args)
    dataset = {k: options.pop(k) for k in list(options) if k.split(".")[0] == "dataset"}
    result = evaluate_runs(options.pop("run", []), dataset_overrides=dataset, **options)
    print_results(result)
    return 0


def print_results(result: EvalResult) -> None:
    """The overall metrics (each member's too, for an ensemble) and the per-class table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    record = result.metrics
    multilabel = record.get("task") == "multilabel"
    if multilabel:
        scalars = multilabel_scalars(record)
        overall = {k: scalars.get(k, float("nan")) for k in MULTILABEL_COLUMNS}
    else:
        overall = scalar_metrics(record)
    table = Table(title=f"{record['split']} split of {record['dataset']}", box=None)
    table.add_column("model")
    for key in overall:
        table.add_column(MULTILABEL_COLUMNS.get(key, key) if multilabel else key, justify="right")
    for label, values in (record.get("members") or {}).items():
        table.add_row(label, *[f"{values.get(k, float('nan')):.4f}" for k in overall])
    label = (
        f"ensemble ({record['mode']})" if record.get("members") else Path(record["runs"][0]).name
    )
    table.add_row(label, *[f"{v:.4f}" for v in overall.values()], style="bold")
    console.print(table)
    for line in calibration_lines(record):
        print(line)
    if multilabel:
        console.print(per_label_table(record))
        print(f"results: {result.out_dir}")
        return
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


def per_label_table(record: dict[str, Any]) -> Any:
    """A multi-label evaluation's per-label rows: precision, recall and F1 at the label's
    threshold, its AP and its support."""
    from rich.table import Table

    table = Table(
        "label",
        "threshold",
        "precision",
        "recall",
        "f1",
        "AP",
        "support",
        box=None,
        title="per label (at the checkpoint's thresholds)",
    )
    for row in record["per_label"]:
        ap = "-" if row["ap"] is None else f"{row['ap']:.4f}"
        table.add_row(
            row["class"],
            f"{row['threshold']:.4f}",
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            ap,
            str(row["support"]),
        )
    return table


def calibration_lines(record: dict[str, Any]) -> list[str]:
    """ECE, MCE, NLL and Brier score of the evaluated probabilities (at the temperature
    applied), and the before/after of a temperature this evaluation fitted."""
    lines = []
    if "ece" in record:
        t = record.get("temperature")
        scaled = f" (logits divided by T = {t:.4f})" if isinstance(t, float) and t != 1.0 else ""
        lines.append(
            f"calibration{scaled}: ECE {record['ece']:.4f}, MCE {record['mce']:.4f}, "
            f"NLL {record['nll']:.4f}, Brier {record['brier']:.4f} (15 bins)"
        )
    block = record.get("calibration")
    if block:
        before, after = block["before"], block["after"]
        lines.append(
            f"temperature scaling: T = {block['temperature']:.4f} fitted on the validation "
            f"split and stored; {block['split']} ECE {before['ece']:.4f} -> {after['ece']:.4f}, "
            f"NLL {before['nll']:.4f} -> {after['nll']:.4f}"
        )
    return lines
