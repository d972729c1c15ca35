"""What the benchmark tables share: run one ``imgcls train -m`` sweep unless its folder already
holds a leaderboard, read its completed runs, and write mean ± sample standard deviation.

Imported by benchmarks/fmnist_lt.py and benchmarks/fmnist_mosaic.py (run as scripts, so this
folder is on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_sweep(command: list[str], sweep: Path) -> Path:
    """Print ``command`` (an ``imgcls train -m ...`` line) and run it with this Python's
    imgcls, unless ``sweep`` already holds a leaderboard; say how long it took and the load."""
    print("$ " + " ".join(command), flush=True)
    if not (sweep / "leaderboard.csv").exists():
        started = time.perf_counter()
        before = os.getloadavg()[0]
        executable = Path(sys.executable).parent / "imgcls"
        subprocess.run([str(executable), *command[1:]], check=True)
        print(
            f"  {time.perf_counter() - started:.0f} s; load average before {before:.2f}, "
            f"after (1/5/15 min) {os.getloadavg()}",
            flush=True,
        )
    return sweep


def completed_summaries(sweep: Path) -> list[dict]:
    """The summary.json of every run of ``sweep``; a run that did not complete stops the table."""
    found = []
    for path in sorted(sweep.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("status") != "completed":
            raise SystemExit(f"{path.parent} did not complete: {summary.get('status')}")
        found.append(summary)
    if not found:
        raise SystemExit(f"{sweep}: no run summaries")
    return found


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"
