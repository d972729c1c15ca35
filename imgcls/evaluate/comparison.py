"""``imgcls report --baseline/--metric/--target``: each leaderboard row against a baseline row
(the difference of the means, its 95 % interval, a p-value and which test gave it) and each
row's time to a target validation score.

A row's runs pair with the baseline's when both rows hold the same (seed, fold) runs: the
paired t-test then removes what a seed or a fold does to both recipes alike. Otherwise the
two rows are compared as independent samples (Welch). The columns are added to the rows of
a :class:`~imgcls.evaluate.leaderboard.Leaderboard`, so that leaderboard.csv, leaderboard.md,
the console table and the HTML page show the same figures.
"""

from __future__ import annotations

import csv
import math
import shlex
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imgcls.base.errors import UserError, did_you_mean
from imgcls.base.record import RunFolder, RunOverride, Summary, parse_override
from imgcls.evaluate.plots import read_metrics
from imgcls.evaluate.significance import Difference, compare, time_to_target


class RunInfo(Protocol):
    """What a comparison reads of a run (leaderboard.RunInfo, which imports this module)."""

    settings: list[RunOverride]
    summary: Summary

    @property
    def folder(self) -> RunFolder: ...

    @property
    def config_settings(self) -> tuple[RunOverride, ...]: ...


class Leaderboard(Protocol):
    """What a comparison reads and sets of a leaderboard (leaderboard.Leaderboard)."""

    metric: str
    mode: str
    columns: list[str]
    rows: list[dict[str, Any]]
    groups: Any  # list[list[RunInfo]]
    figures: list[str]
    comparison: Comparison | None
    compared: str


# A run's figures by name (leaderboard._figures): how a row's values are read.
Figures = Callable[[Any], dict[str, float]]
# Score-like metrics are fractions: a target outside 0..1 is a typo (93 for 0.93).
FRACTION_WORDS = ("accuracy", "map", "f1", "auc", "precision", "recall")


@dataclass(frozen=True)
class Comparison:
    """What ``imgcls report`` compares: ``baseline`` (overrides naming one row, e.g.
    ``augment=none``), ``metric`` (the compared figure; None: the main test figure) and
    ``target`` (a validation score for the time to target)."""

    baseline: str | None = None
    metric: str | None = None
    target: float | None = None

    def __post_init__(self) -> None:
        if self.baseline is not None:
            self.baseline_overrides()  # raises on a malformed one
        if self.metric is not None and self.baseline is None:
            raise UserError(
                f"--metric {self.metric} chooses the figure compared with the baseline row: "
                "give --baseline <override>=<value> too"
            )
        if self.target is not None and not math.isfinite(self.target):
            raise UserError(f"--target {self.target} is not a finite number (e.g. --target 0.93)")

    @property
    def active(self) -> bool:
        """True when there is anything to add to the leaderboard."""
        return self.baseline is not None or self.target is not None

    def baseline_overrides(self) -> list[RunOverride]:
        """The baseline as parsed overrides (``augment=none model=resnet``)."""
        try:
            texts = shlex.split(self.baseline or "")
        except ValueError as error:  # an unclosed quote
            raise UserError(f"--baseline {self.baseline}: {error}") from None
        if not texts:
            raise UserError("--baseline needs <override>=<value>, e.g. --baseline augment=none")
        parsed = []
        for text in texts:
            try:
                override = parse_override(text)
            except UserError:
                override = None
            if override is None or override.value_text is None or override.kind != "change":
                raise UserError(
                    f"--baseline {text!r} is not <override>=<value> (e.g. --baseline augment=none)"
                )
            parsed.append(override)
        return parsed


def _matches(settings: Sequence[RunOverride], wanted: RunOverride) -> bool:
    return any(
        s.key == wanted.key and (s.value_text == wanted.value_text or s.value == wanted.value)
        for s in settings
    )


def _label(board: Leaderboard, row: dict[str, Any]) -> str:
    text = " ".join(f"{c}={row[c]}" for c in board.columns if c != "config")
    return f"{row['rank']}. {text or row.get('config', '')}"


def baseline_index(board: Leaderboard, baseline: str) -> int:
    """The index of the one row whose settings contain every override of ``baseline``;
    none or several: a UserError naming the rows' values."""
    wanted = Comparison(baseline).baseline_overrides()
    settings = [members[0].config_settings for members in board.groups]
    found = [i for i, s in enumerate(settings) if all(_matches(s, w) for w in wanted)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        rows = "; ".join(_label(board, board.rows[i]) for i in found)
        named = {w.key for w in wanted}
        other = [c for c in board.columns if c not in named and c != "config"]
        example = f"{baseline} {other[0]}={board.rows[found[0]][other[0]]}" if other else ""
        raise UserError(
            f"--baseline {baseline} matches {len(found)} rows ({rows}): add a setting that "
            "names one row" + (f", e.g. --baseline '{example}'" if example else "")
        )
    keys = {s.key for group in settings for s in group}
    for override in wanted:
        if override.key not in keys:
            hint = did_you_mean(override.key, keys) or ";"
            available = ", ".join(sorted(keys)) or "(none: every row has the defaults)"
            raise UserError(
                f"--baseline {baseline}: no row sets '{override.key}'{hint} the rows set: "
                f"{available}"
            )
    shown = "; ".join(
        f"{w.key}: "
        + ", ".join(sorted({s.value_text or "" for g in settings for s in g if s.key == w.key}))
        for w in wanted
    )
    raise UserError(f"--baseline {baseline} names no row; the rows' values are {shown}")


def compared_metric(board: Leaderboard, metric: str | None) -> str:
    """The compared figure: ``metric`` when the leaderboard has it, else its main test
    figure (a multi-label sweep's test mAP, otherwise test accuracy)."""
    valid = [board.metric, *board.figures, "train_seconds"]
    if metric is None:
        return "test_map" if "test_map" in board.figures else "test_accuracy"
    if metric not in valid:
        hint = did_you_mean(metric, valid) or ";"
        raise UserError(f"unknown --metric '{metric}'{hint} available: {', '.join(valid)}")
    return metric


def check_target(metric: str, mode: str, target: float) -> None:
    """A target the monitored metric can reach: a fraction for scores, not negative for
    losses."""
    if any(word in metric for word in FRACTION_WORDS) and mode == "max" and not 0 <= target <= 1:
        raise UserError(
            f"--target {target:g} is outside 0..1, the range of {metric} (a fraction: "
            f"--target {target / 100:g} for {target:g} %)"
        )
    if mode == "min" and target < 0:
        raise UserError(f"--target {target:g} is negative; {metric} never is")


def run_key(run: RunInfo) -> tuple[str, str]:
    """What pairs a run with the baseline's: its seed and its fold (as written)."""
    settings = {o.key: o.value_text or "" for o in run.settings}
    seed = "" if run.summary.seed is None else str(run.summary.seed)
    return seed or settings.get("seed", ""), settings.get("dataset.fold", "")


def _samples(
    members: Sequence[RunInfo], name: str, figures: Figures
) -> tuple[dict[Any, float], bool]:
    """A row's runs as ``{(seed, fold): value}``, and whether they can pair: every run has
    a seed or fold and no two share them (else they are keyed by position)."""
    found = [(run_key(m), figures(m).get(name)) for m in members]
    found = [(k, v) for k, v in found if v is not None and math.isfinite(v)]
    keys = [k for k, _ in found]
    unique = len(set(keys)) == len(keys) and ("", "") not in keys
    if unique:
        return dict(found), True
    return {i: v for i, (_, v) in enumerate(found)}, False


def add_differences(board: Leaderboard, comparison: Comparison, figures: Figures) -> None:
    """Each row's difference to the baseline row in ``comparison.metric`` (see :func:`compare`);
    ``figures(run)`` gives a run's ``{name: value}``."""
    assert comparison.baseline is not None
    metric = compared_metric(board, comparison.metric)
    index = baseline_index(board, comparison.baseline)
    base, base_unique = _samples(board.groups[index], metric, figures)
    if not base:
        raise UserError(f"the baseline row ({comparison.baseline}) has no {metric} value")
    board.compared = metric
    for i, (row, members) in enumerate(zip(board.rows, board.groups, strict=True)):
        if i == index:
            row["significance_test"] = "baseline"
            continue
        values, unique = _samples(members, metric, figures)
        if not values:
            continue
        result: Difference = compare(values, base, pairable=unique and base_unique)
        row[f"{metric}_diff"] = result.diff
        row[f"{metric}_diff_ci_low"] = result.low
        row[f"{metric}_diff_ci_high"] = result.high
        row[f"{metric}_p_value"] = result.p_value
        row["significance_test"] = result.test


def add_time_to_target(board: Leaderboard, target: float) -> None:
    """Each row's mean training seconds until its runs' monitored validation metric first
    reaches ``target`` (over the runs that reached it) and the share of its runs that did,
    of those whose metrics.csv has that metric and ``epoch_seconds`` (a run without them is
    neither a hit nor a miss)."""
    check_target(board.metric, board.mode, target)
    for row, members in zip(board.rows, board.groups, strict=True):
        times: list[float | None] = []
        for member in members:
            try:
                columns = read_metrics(member.folder.metrics_csv)
            except (OSError, ValueError, csv.Error):
                continue
            monitor = str((member.summary.best or {}).get("metric") or board.metric)
            if monitor in columns and "epoch_seconds" in columns:
                times.append(time_to_target(columns, monitor, target, board.mode))
        reached = [t for t in times if t is not None]
        row["target_runs"] = len(times)
        row["target_reached"] = len(reached) / len(times) if times else None
        row["time_to_target_s"] = statistics.fmean(reached) if reached else None


def add_comparison(board: Leaderboard, comparison: Comparison, figures: Figures) -> None:
    """The columns ``comparison`` asks for, added to the rows of ``board``."""
    board.comparison = comparison
    if comparison.baseline is not None:
        add_differences(board, comparison, figures)
    if comparison.target is not None:
        add_time_to_target(board, comparison.target)


def csv_columns(board: Leaderboard) -> list[str]:
    """The comparison's columns of leaderboard.csv (none without a comparison)."""
    columns: list[str] = []
    if board.compared:
        name = board.compared
        columns += [
            "baseline",
            f"{name}_diff",
            f"{name}_diff_ci_low",
            f"{name}_diff_ci_high",
            f"{name}_p_value",
            "significance_test",
        ]
    if board.comparison is not None and board.comparison.target is not None:
        columns += ["target", "time_to_target_s", "target_reached", "target_runs"]
    return columns


def csv_constants(board: Leaderboard) -> dict[str, str]:
    """The cells that say what was compared: the baseline and the target."""
    comparison = board.comparison
    if comparison is None:
        return {}
    cells = {"baseline": comparison.baseline or ""}
    if comparison.target is not None:
        sign = ">=" if board.mode == "max" else "<="
        cells["target"] = f"{board.metric}{sign}{comparison.target:g}"
    return cells


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def _p_text(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def table_columns(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """Headers and per-row cells of the comparison for leaderboard.md, the console and the
    HTML page."""
    comparison = board.comparison
    header: list[str] = []
    cells: list[list[str]] = [[] for _ in board.rows]
    if board.compared and comparison is not None:
        name = board.compared
        header += [f"Δ {name} [95% CI]", "p", "test"]
        for row, out in zip(board.rows, cells, strict=True):
            test = row.get("significance_test", "")
            if test == "baseline":
                out += ["(baseline)", "", ""]
                continue
            diff = _signed(row.get(f"{name}_diff"))
            low, high = row.get(f"{name}_diff_ci_low"), row.get(f"{name}_diff_ci_high")
            interval = f" [{_signed(low)}, {_signed(high)}]" if low is not None else ""
            out += [diff + interval, _p_text(row.get(f"{name}_p_value")), test]
    if comparison is not None and comparison.target is not None:
        sign = "≥" if board.mode == "max" else "≤"
        header += [f"s to {sign} {comparison.target:g}", "reached"]
        for row, out in zip(board.rows, cells, strict=True):
            seconds = row.get("time_to_target_s")
            share, runs = row.get("target_reached"), row.get("target_runs") or 0
            out.append("" if seconds is None else f"{seconds:.1f}")
            out.append("" if share is None else f"{round(share * runs)}/{runs}")
    return header, cells


def sort_values(board: Leaderboard, row: dict[str, Any]) -> list[Any]:
    """The numbers the HTML page sorts the columns of :func:`table_columns` by (None: by
    text)."""
    values: list[Any] = []
    if board.compared and board.comparison is not None:
        diff = (
            0.0 if row.get("significance_test") == "baseline" else row.get(f"{board.compared}_diff")
        )
        values += [diff, row.get(f"{board.compared}_p_value"), None]
    if board.comparison is not None and board.comparison.target is not None:
        values += [row.get("time_to_target_s"), row.get("target_reached")]
    return values


def caption(board: Leaderboard) -> str:
    """One line over the comparison's columns in the console."""
    comparison = board.comparison
    parts = []
    if board.compared and comparison is not None:
        parts.append(f"against {comparison.baseline}: Δ of the mean {board.compared}")
    if comparison is not None and comparison.target is not None:
        sign = "≥" if board.mode == "max" else "≤"
        parts.append(f"seconds to {board.metric} {sign} {comparison.target:g}")
    return "; ".join(parts)


def notes(board: Leaderboard) -> list[str]:
    """What leaderboard.md says about the comparison columns."""
    comparison = board.comparison
    lines = []
    if board.compared and comparison is not None:
        lines.append(
            f"Δ: the row's mean {board.compared} minus the baseline row's ({comparison.baseline}),"
            " with its 95 % confidence interval and two-sided p-value: a paired t-test over "
            "the runs of the same seed and fold when both rows have the same seeds and folds, "
            "Welch's t-test otherwise."
        )
    if comparison is not None and comparison.target is not None:
        lines.append(
            f"Time to target: training seconds until {board.metric} first reached "
            f"{comparison.target:g}, the mean over the runs that reached it; reached: how "
            "many of the row's runs did."
        )
    return lines
