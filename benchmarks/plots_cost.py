"""What the end-of-run figures cost a run: ``trainer.plots=true`` against ``false``.

Trains ``experiment=smoke`` (the digits, two epochs: the smoke run of a CI job) on the CPU in
this process, plus any overrides given, alternating the two settings ``--repeats`` times after
one warm-up run, and prints each setting's median wall time and ``plots_off_ratio=``
(false / true). The figures are the three PNGs every run draws (curves, confusion matrix,
predictions grid). The tests' tiny run is ``dataset=synthetic dataset.num_samples=240
dataset.image_size=8 dataset.channels=1 dataset.num_classes=4 model=simplecnn
model.widths=[8,16] model.hidden=32 trainer.epochs=1 trainer.batch_size=32``.

    python benchmarks/plots_cost.py [--repeats 5] [override ...]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time

SMOKE = ["experiment=smoke", "trainer.device=cpu", "trainer.precision=32"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="added to every run")
    args = parser.parse_args()
    run = [*SMOKE, *args.overrides]
    from imgcls.cli import main as imgcls

    with tempfile.TemporaryDirectory() as out:
        assert imgcls(["train", *run, f"output_root={out}/warm"]) == 0
        logging.disable(logging.CRITICAL)
        seconds: dict[str, list[float]] = {"true": [], "false": []}
        for repeat in range(args.repeats):
            for plots in seconds:
                started = time.perf_counter()
                code = imgcls(
                    ["train", *run, f"trainer.plots={plots}", f"output_root={out}/{repeat}"]
                )
                assert code == 0
                seconds[plots].append(time.perf_counter() - started)
    on, off = (statistics.median(seconds[k]) for k in ("true", "false"))
    print(f"plots=true  median {on:.3f} s  {[round(s, 3) for s in seconds['true']]}")
    print(f"plots=false median {off:.3f} s  {[round(s, 3) for s in seconds['false']]}")
    print(f"plots_off_ratio={off / on:.3f} (load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
