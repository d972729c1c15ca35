"""Fashion-MNIST mosaics: binary cross-entropy against the asymmetric loss, several seeds each.

Runs ``experiment=fmnist_mosaic`` once per loss as a ``-m`` sweep over ``--seeds`` (one sweep
folder per loss under ``--out``), one run at a time, then prints the table of the README:
test mAP, macro F1 and subset accuracy (mean ± sample standard deviation over the seeds), the
validation mAP, and the median training time with the load average seen during the sweep.
The label table comes from ``python benchmarks/fmnist_tables.py mosaic --out DIR``.

    python benchmarks/fmnist_mosaic.py --table DIR/labels.csv --out outputs/fmnist_mosaic

Each loss's command is printed before it runs, so every row is one command to repeat. A
sweep folder that already holds a leaderboard is read, not run again.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sweep_figures import completed_summaries, mean_std, run_sweep

LOSSES = {"binary cross-entropy": "bce", "asymmetric (Ridnik et al. 2021)": "asymmetric"}


def run_loss(loss: str, table: str, seeds: str, out: Path, extra: list[str]) -> Path:
    sweep = out / loss
    command = [
        "imgcls",
        "train",
        "-m",
        "experiment=fmnist_mosaic",
        f"dataset.path={table}",
        f"loss={loss}",
        *extra,
        f"seed={seeds}",
        f"hydra.sweep.dir={sweep}",
    ]
    return run_sweep(command, sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="the mosaics' labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="a folder for the sweeps")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("extra", nargs="*", help="overrides added to every run")
    args = parser.parse_args()
    print(
        "| loss | test mAP | test macro F1 | test subset accuracy | val mAP | training (median) |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for name, loss in LOSSES.items():
        runs = completed_summaries(run_loss(loss, args.table, args.seeds, args.out, args.extra))
        test = [run["test"] for run in runs]
        training = statistics.median(run["timings"]["training"] for run in runs)
        rows.append(
            f"| {name} | {mean_std([t['map'] for t in test])} "
            f"| {mean_std([t['f1_macro'] for t in test])} "
            f"| {mean_std([t['subset_accuracy'] for t in test])} "
            f"| {mean_std([run['best']['val_map'] for run in runs])} | {training:.0f} s |"
        )
        lowest = min(t["map"] for t in test)
        print(
            f"  {loss}: lowest test mAP {lowest:.4f}, longest training "
            f"{max(run['timings']['training'] for run in runs):.0f} s",
            flush=True,
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
