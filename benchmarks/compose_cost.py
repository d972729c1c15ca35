"""What composing and validating a config costs, for one or more checkouts, in one command.

    git worktree add /tmp/before 17f52c6
    python benchmarks/compose_cost.py /tmp/before .     # each checkout in its own process

Prints the median of 15 compositions (and validations) of ``model=simplecnn optimizer=adamw``
for each checkout, the load average, and the ratio of the last checkout to the first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

REPEATS = 15


def measure(checkout: str) -> tuple[float, float]:
    """(compose, validate) medians in seconds for the imgcls package in ``checkout``."""
    sys.path.insert(0, os.path.abspath(checkout))
    import imgcls.app.components  # noqa: F401
    from imgcls.app.validation import validate
    from imgcls.config.compose import compose

    overrides = ["model=simplecnn", "optimizer=adamw"]
    cfg = compose(overrides)
    compose_times, validate_times = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        cfg = compose(overrides)
        compose_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        validate(cfg)
        validate_times.append(time.perf_counter() - started)
    return statistics.median(compose_times), statistics.median(validate_times)


def main(checkouts: list[str]) -> None:
    results = []
    for checkout in checkouts:
        out = subprocess.run(
            [sys.executable, __file__, "--one", checkout], capture_output=True, text=True
        ).stdout.split()
        results.append((checkout, float(out[0]), float(out[1])))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for checkout, composing, validating in results:
        print(f"{checkout}: compose {composing:.3f} s, validate {validating:.3f} s (median)")
    if len(results) > 1:
        print(f"compose ratio (last / first): {results[-1][1] / results[0][1]:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(*measure(sys.argv[2]))
    else:
        main(sys.argv[1:] or ["."])
