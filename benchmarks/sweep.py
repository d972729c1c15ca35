"""Wall time of an 8-job sweep with Hydra's basic launcher and with joblib.

Both sweeps run the same eight small runs (seeds 0..7) through the real ``imgcls`` program;
one single run is timed too, so each sweep is also compared with 8 x one run. joblib runs
``n_jobs`` jobs at once, each with its share of the cores as torch threads.

    python benchmarks/sweep.py [--n-jobs 2] [override ...]

Last line: joblib_speedup=<basic sweep seconds / joblib sweep seconds>.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = [
    "model=simplecnn",
    "dataset=digits",
    "trainer.epochs=3",
    "augment=none",
    "regularizer=none",
]


def timed(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "imgcls", "train", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"imgcls train {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    run = [*RUN, *args.overrides]
    seeds = "seed=" + ",".join(str(s) for s in range(8))
    single = timed(run)
    basic = timed(["-m", seeds, *run])
    joblib = timed(
        ["-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}", seeds, *run]
    )
    print(f"one run (own process): {single:.1f}s; 8 x one run: {8 * single:.1f}s")
    print(f"basic launcher, 8 jobs: {basic:.1f}s ({8 * single / basic:.2f}x of 8 x one run)")
    print(
        f"joblib n_jobs={args.n_jobs}, 8 jobs: {joblib:.1f}s ({8 * single / joblib:.2f}x of 8 x one run)"
    )
    print(f"joblib_speedup={basic / joblib:.2f}")


if __name__ == "__main__":
    main()
