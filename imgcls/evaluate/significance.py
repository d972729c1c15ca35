"""The statistics behind a leaderboard's intervals and its comparison with a baseline row.

Every interval is a two-sided 95 % interval from Student's t distribution; the tests are
scipy's: ``ttest_rel`` when the runs of two rows pair up (the same seeds and folds), Welch's
``ttest_ind(equal_var=False)`` otherwise, with the Welch–Satterthwaite degrees of freedom for
the interval of the difference. scipy is imported when a figure is computed, not before.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

LEVEL = 0.95
PAIRED = "paired"
WELCH = "Welch"


def _t_quantile(df: float) -> float:
    """Student's t quantile for the interval: ``scipy.stats.t.ppf``'s function, from
    scipy.special, which loads in a third of scipy.stats's time (every leaderboard needs it;
    scipy.stats is imported only for a baseline's p-values)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.5 + LEVEL / 2))


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95 % confidence interval of the mean of ``values``; None for fewer than two."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    half = _t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Difference:
    """A row's mean minus the baseline's, its 95 % interval and two-sided p-value (None
    where the runs are too few: one pair, or fewer than two runs on a side for Welch)."""

    test: str  # PAIRED or WELCH
    diff: float
    low: float | None
    high: float | None
    p_value: float | None
    n: int  # pairs (paired) or the row's runs (Welch)
    n_baseline: int


def _p_value(test: str, values: Sequence[float], baseline: Sequence[float]) -> float | None:
    """scipy's two-sided p-value (None when it has none: no spread on either side)."""
    from scipy import stats

    with warnings.catch_warnings():  # nearly identical values: scipy warns, still answers
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == PAIRED:
            p_value = float(stats.ttest_rel(values, baseline).pvalue)
        else:
            p_value = float(stats.ttest_ind(values, baseline, equal_var=False).pvalue)
    return p_value if math.isfinite(p_value) else None


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> Difference:
    """``values[i]`` paired with ``baseline[i]`` (the same seed and fold): the mean paired
    difference, its t interval and the p-value of scipy's ``ttest_rel``."""
    if len(values) != len(baseline) or not values:
        raise ValueError("a paired comparison needs as many values as baseline values")
    diffs = [a - b for a, b in zip(values, baseline, strict=True)]
    diff = statistics.fmean(diffs)
    n = len(diffs)
    if n < 2:
        return Difference(PAIRED, diff, None, None, None, n, n)
    half = _t_quantile(n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    p_value = _p_value(PAIRED, values, baseline)
    return Difference(PAIRED, diff, diff - half, diff + half, p_value, n, n)


def welch_difference(values: Sequence[float], baseline: Sequence[float]) -> Difference:
    """The difference of two means with unequal variances: Welch–Satterthwaite degrees of
    freedom for the interval, scipy's ``ttest_ind(equal_var=False)`` for the p-value."""
    n, m = len(values), len(baseline)
    if not n or not m:
        raise ValueError("a comparison needs values on both sides")
    diff = statistics.fmean(values) - statistics.fmean(baseline)
    if n < 2 or m < 2:
        return Difference(WELCH, diff, None, None, None, n, m)
    a, b = statistics.variance(values) / n, statistics.variance(baseline) / m
    se = math.sqrt(a + b)
    p_value = _p_value(WELCH, values, baseline)
    if se == 0:  # both sides constant: the interval is the difference itself
        return Difference(WELCH, diff, diff, diff, p_value, n, m)
    df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (m - 1))
    half = _t_quantile(df) * se
    return Difference(WELCH, diff, diff - half, diff + half, p_value, n, m)


def compare(
    values: Mapping[Hashable, float],
    baseline: Mapping[Hashable, float],
    pairable: bool = True,
) -> Difference:
    """A row against the baseline row, each a ``{(seed, fold): value}`` of its runs: paired
    when both hold exactly the same keys (and ``pairable``: every key names one run),
    Welch otherwise."""
    if pairable and values.keys() == baseline.keys():
        keys = sorted(values, key=repr)
        return paired_difference([values[k] for k in keys], [baseline[k] for k in keys])
    return welch_difference(list(values.values()), list(baseline.values()))


def time_to_target(
    columns: Mapping[str, Sequence[float]], monitor: str, target: float, mode: str
) -> float | None:
    """Training seconds (the cumulative ``epoch_seconds`` of metrics.csv) until ``monitor``
    first reaches ``target`` (at least it when ``mode`` is max, at most it when min); None
    when it never does."""
    values = columns.get(monitor, [])
    seconds = columns.get("epoch_seconds", [])
    elapsed = 0.0
    for value, spent in zip(values, seconds, strict=False):
        if math.isfinite(spent):
            elapsed += spent
        if math.isfinite(value) and (value >= target if mode == "max" else value <= target):
            return elapsed
    return None
