"""Fashion-MNIST-LT: plain cross-entropy against each remedy for skewed classes.

Runs ``experiment=fmnist_lt`` once per remedy as a ``-m`` sweep over ``--seeds`` (one sweep
folder per remedy under ``--out``), then prints the table of the README: validation and test
balanced accuracy, mean ± sample standard deviation over the seeds, and the remedy that
validation alone chooses (the highest mean validation balanced accuracy). The label table
comes from ``python benchmarks/fmnist_tables.py lt --out DIR``.

    python benchmarks/fmnist_lt.py --table DIR/labels.csv --out outputs/fmnist_lt [--seeds 0,1,2]

Each remedy's command is printed before it runs, so every row is one command to repeat.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sweep_figures import completed_summaries, mean_std, run_sweep

REMEDIES = {
    "cross-entropy": [],
    "class weights (inverse frequency)": ["loss.class_weights=auto"],
    "balanced sampler": ["data.sampler=balanced"],
    "focal (gamma 2)": ["loss=focal"],
    "class-balanced focal (effective number, beta 0.9999)": [
        "loss=focal",
        "loss.class_weights=auto",
        "loss.weighting=effective_number",
        "loss.beta=0.9999",
    ],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.split(" (")[0]).strip("_")


def run_remedy(name: str, table: str, seeds: str, out: Path, extra: list[str]) -> Path:
    sweep = out / slug(name)
    command = [
        "imgcls",
        "train",
        "-m",
        "experiment=fmnist_lt",
        f"dataset.path={table}",
        *REMEDIES[name],
        *extra,
        f"seed={seeds}",
        f"hydra.sweep.dir={sweep}",
    ]
    return run_sweep(command, sweep)


def figures(sweep: Path, key: str) -> list[float]:
    runs = completed_summaries(sweep)
    return [run["best"][key] if key.startswith("val_") else run["test"][key] for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="the LT labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="a folder for the sweeps")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("extra", nargs="*", help="overrides added to every run")
    args = parser.parse_args()
    sweeps = {
        name: run_remedy(name, args.table, args.seeds, args.out, args.extra) for name in REMEDIES
    }
    rows = []
    for name, sweep in sweeps.items():
        val = figures(sweep, "val_balanced_accuracy")
        test = figures(sweep, "balanced_accuracy")
        accuracy = figures(sweep, "accuracy")
        rows.append((name, val, test, accuracy))
    chosen = max(rows, key=lambda row: statistics.mean(row[1]))[0]
    print("| remedy | val balanced accuracy | test balanced accuracy | test accuracy |")
    print("|---|---|---|---|")
    for name, val, test, accuracy in rows:
        mark = " (chosen on validation)" if name == chosen else ""
        print(f"| {name}{mark} | {mean_std(val)} | {mean_std(test)} | {mean_std(accuracy)} |")
    base = rows[0]
    best = next(row for row in rows if row[0] == chosen)
    gain = statistics.mean(best[2]) - statistics.mean(base[2])
    spread = statistics.stdev(best[2]) + statistics.stdev(base[2])
    print(f"chosen={chosen!r} gain={gain:.4f} std_sum={spread:.4f} beats={gain > spread}")


if __name__ == "__main__":
    main()
