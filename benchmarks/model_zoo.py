"""Each model family's default variant trained on the digits: params, FLOPs, accuracy, time.

Runs ``train()`` (the function behind ``imgcls train``) once per family with the default
config (dataset=digits, augment=shift, sgd, cosine, label smoothing) and ``--epochs``
epochs, into a temporary folder, and prints a markdown table. Train times are wall-clock
seconds on this machine and noisy on a shared CPU, so the table also gives each family's
time as a ratio to LeNet-5's, measured in the same process.

    python benchmarks/model_zoo.py [--epochs 10] [--threads 1] [family ...]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch

from imgcls.config import compose
from imgcls.models.catalog import FAMILIES
from imgcls.train.job import train

FAMILY_ORDER = ["lenet", "alexnet", "vgg", "resnet", "densenet", "efficientnet", "simplecnn"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="*", default=FAMILY_ORDER)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("imgcls").setLevel(logging.WARNING)
    families = ["lenet", *[f for f in args.families if f != "lenet"]]  # lenet: the baseline
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for family in families:
            cfg = compose([f"model={family}", f"trainer.epochs={args.epochs}"])
            summary = train(cfg, Path(root) / family).summary
            variant = FAMILIES[family].default if family in FAMILIES else family
            rows.append((family, variant, summary))
            print(f"{family}: done in {summary['train_seconds']:.1f} s", flush=True)
    baseline = rows[0][2]["train_seconds"]
    print(f"\n{args.epochs} epochs on digits (1x8x8), {args.threads} thread(s), "
          f"device {rows[0][2]['device']}\n")  # fmt: skip
    print(
        "| family | default variant | params | FLOPs / image | test accuracy | train s | vs LeNet-5 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for family, variant, s in rows:
        print(
            f"| {family} | {variant} | {s['params']:,} | {s['flops'] / 1e6:.2f} M | "
            f"{s['test']['accuracy']:.4f} | {s['train_seconds']:.1f} | "
            f"{s['train_seconds'] / baseline:.1f}x |"
        )


if __name__ == "__main__":
    main()
