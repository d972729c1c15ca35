"""What the Grad-CAM panel (``plots/cam.png``) costs at the end of a run.

Times :func:`imgcls.app.cam.write_run_cam` on a finished run's test split, in this process:
the first call (which imports captum and draws the first figure) and ``--repeats`` more, and
prints each. With no run folder it trains ``experiment=smoke`` (the digits, two epochs) on the
CPU into a temporary folder first.

    python benchmarks/cam_cost.py [--repeats 3] [run folder]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SMOKE = ["experiment=smoke", "trainer.device=cpu", "trainer.precision=32", "trainer.plots=false"]


def time_panel(run: Path, repeats: int) -> None:
    from imgcls.app.build import build_dataset
    from imgcls.app.evaluation import dataset_config
    from imgcls.app.inference import load_run, predict_probabilities
    from imgcls.train.engine import Predictions

    loaded = load_run(run, "best", "cpu")
    test = build_dataset(dataset_config(loaded.config, {})).test.materialize()
    probabilities = predict_probabilities(
        loaded.model, test.images, loaded.spec["mean"], loaded.spec["std"], task=loaded.task
    )
    predictions = Predictions(probabilities=probabilities, labels=test.labels)
    from imgcls.app.cam import write_run_cam

    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        assert write_run_cam(run, predictions, test) is not None
        seconds.append(time.perf_counter() - started)
    print(f"first call (imports captum) {seconds[0]:.3f} s")
    print(
        f"later calls median {statistics.median(seconds[1:]):.3f} s  {[round(s, 3) for s in seconds[1:]]}"
    )
    print(f"{run / 'plots' / 'cam.png'}: {(run / 'plots' / 'cam.png').stat().st_size} bytes")
    print(f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("run", nargs="?", type=Path, help="a finished run folder")
    args = parser.parse_args()
    if args.run is not None:
        time_panel(args.run, args.repeats)
        return
    from imgcls.cli import main as imgcls

    with tempfile.TemporaryDirectory() as out:
        assert imgcls(["train", *SMOKE, f"output_root={out}"]) == 0
        (summary,) = Path(out).rglob("summary.json")
        time_panel(summary.parent, args.repeats)


if __name__ == "__main__":
    main()
