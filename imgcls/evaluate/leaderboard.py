"""Leaderboards: one row per configuration of a sweep, seeds and folds merged into mean ± std,
a 95 % confidence interval of the mean (t distribution) and n.

Runs are grouped by their Hydra overrides without ``seed`` and ``dataset.fold`` (the runs of a
K-fold sweep repeat one configuration like seeds do: n counts folds × seeds); the overrides
whose values differ between groups become the columns. Rows are sorted by the monitored metric (the
``best`` entry of summary.json). Failed and unfinished runs are listed as such, including
jobs that failed before their run directory was kept (read from the sweep's jobs.json).

The test figures are accuracy and loss, and, when any run has them, a single-label run's
balanced accuracy and a multi-label run's mAP, F1s, subset accuracy and Hamming loss; a run
without a figure (a single-label run in a mixed sweep) leaves its cell empty.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcls.base.atomic import atomic_write
from imgcls.base.errors import UserError
from imgcls.base.folders import ensure_dir
from imgcls.base.record import (
    RunFolder,
    RunOverride,
    Summary,
    SweepFolder,
    find_jobs_files,
    find_runs,
    parse_overrides,
)
from imgcls.config.values import is_launch_key
from imgcls.evaluate.comparison import (
    Comparison,
    add_comparison,
    csv_columns,
    csv_constants,
    table_columns,
)
from imgcls.evaluate.comparison import notes as comparison_notes
from imgcls.evaluate.plots import read_metrics
from imgcls.evaluate.significance import mean_interval

FIGURES = ("test_accuracy", "test_loss")
# A multi-label run's test figures (summary.json ``test``), columns when any run has them.
MULTILABEL_FIGURES = (
    "test_map",
    "test_f1_macro",
    "test_f1_micro",
    "test_subset_accuracy",
    "test_hamming_loss",
)
# Test figures that get columns when any run has them.
OPTIONAL_FIGURES = ("test_balanced_accuracy", *MULTILABEL_FIGURES)
# Headers of the figures in leaderboard.md, the console and the HTML page.
FIGURE_NAMES = {
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "test_balanced_accuracy": "test balanced accuracy",
    "test_map": "test mAP",
    "test_f1_macro": "test macro F1",
    "test_f1_micro": "test micro F1",
    "test_subset_accuracy": "test subset accuracy",
    "test_hamming_loss": "test Hamming loss",
}
# In csv only: a multi-label run's test_accuracy is already its subset accuracy.
CSV_ONLY = ("test_subset_accuracy",)
# Overrides that repeat a configuration rather than make one: their runs merge into a row.
REPEATS = ("seed", "dataset.fold")


@dataclass
class RunInfo:
    """What a leaderboard needs of one run (or of a job that left no run behind)."""

    run_dir: Path
    status: str
    settings: list[RunOverride]  # what the run computed: no Hydra or sweep.resume overrides
    summary: Summary = field(default_factory=Summary)
    error: str = ""

    @property
    def folder(self) -> RunFolder:
        """The run's folder, to find its files."""
        return RunFolder(self.run_dir)

    @property
    def overrides(self) -> list[str]:
        """The overrides as written (``optimizer.lr=0.05``), for tables and messages."""
        return [o.text for o in self.settings]

    @property
    def config_overrides(self) -> tuple[str, ...]:
        """The overrides that make a configuration: all but the seed and the fold."""
        return tuple(o.text for o in self.config_settings)

    @property
    def config_settings(self) -> tuple[RunOverride, ...]:
        """The parsed overrides that make a configuration: all but the seed and the fold."""
        return tuple(o for o in self.settings if o.key not in REPEATS)

    @property
    def fold(self) -> str:
        """The run's ``dataset.fold`` as written; empty when it was not set."""
        return setting_values(self.settings).get("dataset.fold", "")


@dataclass
class Leaderboard:
    metric: str
    mode: str
    columns: list[str]
    rows: list[dict[str, Any]]
    failed: list[RunInfo]
    groups: list[list[RunInfo]]
    figures: list[str] = field(default_factory=lambda: list(FIGURES))  # test figures shown
    comparison: Comparison | None = None  # imgcls report --baseline/--target
    compared: str = ""  # the figure compared with the baseline row

    @property
    def interval_names(self) -> list[str]:
        """The figures whose rows get a 95 % confidence interval of the mean."""
        return [self.metric, *self.figures]

    @property
    def shown_figures(self) -> list[str]:
        """The test figures of leaderboard.md, the console table and the HTML page."""
        return [f for f in self.figures if f not in CSV_ONLY]


def _computed(overrides: list[RunOverride]) -> list[RunOverride]:
    """Without how a job was launched (Hydra settings, ``sweep.resume``, ``output_root``):
    what it computed."""
    return [o for o in overrides if not o.is_hydra and not is_launch_key(o.key)]


def _settings(run: RunFolder) -> list[RunOverride]:
    try:
        return _computed(run.read_overrides())
    except UserError:
        return []  # a damaged overrides file: the run is listed without its settings


def read_run(run_dir: RunFolder | Path) -> RunInfo:
    """A run's summary; a damaged one (not JSON, not an object) is listed as unreadable.

    Sections of the wrong shape (``best``, ``test``) are dropped by :meth:`Summary.read`.
    """
    run = RunFolder.of(run_dir)
    try:
        summary = run.read_summary()
    except UserError as error:
        return RunInfo(run.path, "unreadable", _settings(run), error=str(error))
    return RunInfo(run.path, summary.status, _settings(run), summary, summary.error or "")


def read_jobs(path: Path) -> list[dict[str, Any]]:
    """The job records of a sweep's jobs.json; a damaged file or entry is left out."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(records, list):
        return []
    return [r for r in records if isinstance(r, dict) and isinstance(r.get("run_dir"), str)]


def collect_runs(paths: Iterable[str | Path]) -> list[RunInfo]:
    """Every run under the given run or sweep directories, plus failed jobs from jobs.json."""
    runs: dict[Path, RunInfo] = {}
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise UserError(f"not a directory: {path}; give run or sweep directories")
        found = [RunFolder(path)] if RunFolder(path).is_run() else find_runs(path)
        for run in found:
            runs[run.path.resolve()] = read_run(run)
        for jobs_file in find_jobs_files(path):
            for job in read_jobs(jobs_file):
                job_dir = Path(job["run_dir"]).resolve()
                status = str(job.get("status", "unknown"))
                if status != "completed" and job_dir not in runs:
                    overrides = job.get("overrides")
                    settings = parse_overrides(overrides) if isinstance(overrides, list) else []
                    error = str(job.get("error") or "")
                    runs[job_dir] = RunInfo(job_dir, status, settings, error=error)
        if not found and not runs:
            raise UserError(f"{path} holds no imgcls runs (no summary.json below it)")
    return sorted(runs.values(), key=lambda r: str(r.run_dir))


def setting_values(overrides: Iterable[RunOverride]) -> dict[str, str]:
    """``{key: value as written}`` of overrides (``~key`` without a value: empty)."""
    return {o.key: o.value_text or "" for o in overrides}


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _add_intervals(row: dict[str, Any], name: str, values: Sequence[float]) -> None:
    """``<name>_ci_low`` and ``<name>_ci_high``: the 95 % interval of the mean (n >= 2)."""
    interval = mean_interval(values)
    if interval is not None:
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = interval


def _figures(run: RunInfo) -> dict[str, float]:
    summary = run.summary
    best = summary.best or {}
    values: dict[str, float] = {}
    if isinstance(best.get("value"), (int, float)):
        values[str(best.get("metric", "val_accuracy"))] = float(best["value"])
    for key, value in (summary.test or {}).items():
        if isinstance(value, (int, float)):
            values[f"test_{key}"] = float(value)
    if summary.train_seconds is not None:
        values["train_seconds"] = float(summary.train_seconds)
    return values


def build_leaderboard(runs: Sequence[RunInfo], comparison: Comparison | None = None) -> Leaderboard:
    """Group completed runs by their overrides without seed and fold, aggregate, sort; with
    ``comparison``, add its columns (differences to a baseline row, time to a target)."""
    completed = [r for r in runs if r.status == "completed"]
    failed = [r for r in runs if r.status != "completed"]
    metric = next(
        (str(r.summary.best["metric"]) for r in completed if (r.summary.best or {}).get("metric")),
        "val_accuracy",
    )
    mode = "min" if metric.endswith("loss") else "max"
    grouped: dict[tuple[str, ...], list[RunInfo]] = {}
    for run in completed:
        grouped.setdefault(tuple(sorted(run.config_overrides)), []).append(run)
    settings = [setting_values(parse_overrides(key)) for key in grouped]
    listed = settings + [setting_values(r.config_settings) for r in failed]
    keys = sorted({k for s in listed for k in s})
    columns = [k for k in keys if len({s.get(k, "") for s in listed}) > 1]
    measured = {name for run in completed for name in _figures(run)}
    shown = [*FIGURES, *(f for f in OPTIONAL_FIGURES if f in measured)]
    rows: list[dict[str, Any]] = []
    groups: list[list[RunInfo]] = []
    for (key, members), setting in zip(grouped.items(), settings, strict=True):
        row: dict[str, Any] = {c: setting.get(c, "") for c in columns}
        if not columns:
            row["config"] = " ".join(key) or "(defaults)"
        row["n"] = len(members)
        figures = [_figures(m) for m in members]
        for name in (metric, *shown, "train_seconds"):
            values = [f[name] for f in figures if name in f]
            if values:
                row[f"{name}_mean"], row[f"{name}_std"] = _stats(values)
                if name != "train_seconds":
                    _add_intervals(row, name, values)
        row["params"] = _or_empty(members[0].summary.params)
        row["flops"] = _or_empty(members[0].summary.flops)
        row["seeds"] = " ".join(str(_or_empty(m.summary.seed)) for m in members)
        row["folds"] = " ".join(m.fold for m in members) if any(m.fold for m in members) else ""
        row["runs"] = " ".join(str(m.run_dir) for m in members)
        rows.append(row)
        groups.append(members)
    sign = -1.0 if mode == "max" else 1.0

    def order(item: tuple[dict[str, Any], list[RunInfo]]) -> float:
        value = item[0].get(f"{metric}_mean")
        return sign * value if isinstance(value, float) and math.isfinite(value) else math.inf

    ranked = sorted(zip(rows, groups, strict=True), key=order)
    for rank, (row, _) in enumerate(ranked, start=1):
        row["rank"] = rank
    board = Leaderboard(
        metric,
        mode,
        columns or ["config"],
        [r for r, _ in ranked],
        failed,
        [g for _, g in ranked],
        shown,
    )
    if comparison is not None and comparison.active:
        add_comparison(board, comparison, _figures)
    return board


def _or_empty(value: Any) -> Any:
    """A missing summary fact as an empty cell."""
    return "" if value is None else value


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def csv_text(board: Leaderboard) -> str:
    names = (board.metric, *board.figures, "train_seconds")
    stats = [f"{n}_{s}" for n in names for s in ("mean", "std")]
    intervals = [f"{n}_{s}" for n in board.interval_names for s in ("ci_low", "ci_high")]
    header = [
        "rank",
        *board.columns,
        "n",
        *stats,
        *intervals,
        *csv_columns(board),
        "params",
        "flops",
        "seeds",
        "folds",
        "status",
        "error",
        "runs",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    constants = csv_constants(board)
    for row in board.rows:
        values = {**row, **constants, "status": "completed", "error": ""}
        writer.writerow([_number(values.get(h)) for h in header])
    for run in board.failed:
        values = setting_values(run.config_settings)
        cells = {
            **{c: values.get(c, "") for c in board.columns},
            "n": 1,
            "status": run.status,
            "error": run.error,
            "runs": str(run.run_dir),
            "seeds": setting_values(run.settings).get("seed", ""),
            "folds": run.fold,
        }
        if board.columns == ["config"]:
            cells["config"] = " ".join(run.config_overrides)
        writer.writerow([_number(cells.get(h)) for h in header])
    return buffer.getvalue()


def interval_text(row: dict[str, Any], name: str) -> str:
    """``[0.9686, 0.9738]``: the 95 % interval of the mean; empty for n = 1."""
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    return f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""


def mean_std(row: dict[str, Any], name: str, interval: bool = True) -> str:
    """``0.9712 ± 0.0021 [0.9686, 0.9738]``: mean ± std [95 % interval of the mean]."""
    mean = row.get(f"{name}_mean")
    if mean is None:
        return ""
    std = row.get(f"{name}_std")
    text = f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"
    bounds = interval_text(row, name) if interval else ""
    return f"{text} {bounds}" if bounds else text


def interval_rows(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """The console's table of intervals (leaderboard.md and the page show them in the
    figures' cells): rank, settings, n and each figure's 95 % interval; no rows when every
    row is a single run."""
    figures = [board.metric, *board.shown_figures]
    header = ["rank", *board.columns, "n", *(FIGURE_NAMES.get(f, f) for f in figures)]
    cells = [
        [
            str(row["rank"]),
            *[str(row.get(c, "")) for c in board.columns],
            str(row["n"]),
            *(interval_text(row, f) for f in figures),
        ]
        for row in board.rows
    ]
    return header, cells if any(row["n"] > 1 for row in board.rows) else []


def table_rows(board: Leaderboard, intervals: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by leaderboard.md, the HTML page and the rich table (which
    shows the intervals in a table of their own: ``intervals=False``)."""
    figures = board.shown_figures
    compared_header, compared_cells = table_columns(board)
    header = [
        "rank",
        *board.columns,
        "n",
        f"{board.metric} ({board.mode})",
        *(FIGURE_NAMES.get(f, f) for f in figures),
        *compared_header,
        "train s",
        "params",
        "FLOPs",
    ]
    cells = []
    for row, compared in zip(board.rows, compared_cells, strict=True):
        cells.append(
            [
                str(row["rank"]),
                *[str(row.get(c, "")) for c in board.columns],
                str(row["n"]),
                mean_std(row, board.metric, intervals),
                *(mean_std(row, f, intervals) for f in figures),
                *compared,
                f"{row.get('train_seconds_mean', float('nan')):.1f}",
                count_text(row.get("params")),
                count_text(row.get("flops")),
            ]
        )
    return header, cells


def comparison_span(board: Leaderboard) -> range:
    """Where the comparison's columns stand among :func:`table_rows`' (after the test
    figures); empty without a comparison."""
    start = len(board.columns) + 3 + len(board.shown_figures)
    return range(start, start + len(table_columns(board)[0]))


def count_text(value: Any) -> str:
    """A parameter or FLOP count for people: 75.0k, 11.2M, 1.11G."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return str(value)


def markdown_text(board: Leaderboard, title: str = "Leaderboard") -> str:
    header, cells = table_rows(board)
    lines = [
        f"# {title}",
        "",
        f"Sorted by {board.metric} ({board.mode}); mean ± sample standard deviation over "
        "seeds and folds (n runs) [95 % confidence interval of the mean, t distribution, "
        "n >= 2].",
        "",
        *(line for note in comparison_notes(board) for line in (note, "")),
    ]
    if any(f in MULTILABEL_FIGURES for f in board.figures):
        lines += [
            "Multi-label runs: test accuracy is the subset accuracy (every label of an image "
            "right); an empty cell is a figure that run does not have.",
            "",
        ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    if board.failed:
        lines += ["", "## Failed or unfinished runs", ""]
        for run in board.failed:
            settings = " ".join(run.overrides) or "(defaults)"
            lines.append(f"- **{run.status}**: `{settings}` ({run.run_dir}): {run.error}")
    return "\n".join(lines) + "\n"


def write_leaderboard(out_dir: Path, board: Leaderboard) -> tuple[Path, Path]:
    """leaderboard.csv and leaderboard.md in ``out_dir`` (a sweep or report folder)."""
    ensure_dir(out_dir, "report folder")
    folder = SweepFolder(out_dir)
    csv_path, md_path = folder.leaderboard_csv, folder.leaderboard_md
    atomic_write(csv_path, lambda f: f.write(csv_text(board)))
    atomic_write(md_path, lambda f: f.write(markdown_text(board, f"Leaderboard: {out_dir.name}")))
    return csv_path, md_path


def write_jobs(sweep_dir: Path, jobs: Sequence[Any]) -> Path:
    """Record every job of a sweep (run dir, status, error, overrides) in jobs.json."""

    path = SweepFolder(sweep_dir).jobs_json
    records = [
        {
            "run_dir": str(j.run_dir),
            "status": j.status,
            "error": j.error,
            "overrides": [
                o.text
                for o in parse_overrides(getattr(j, "overrides", []))
                if not o.is_hydra  # how the job was launched, not what it computed
            ],
        }
        for j in jobs
    ]
    atomic_write(path, lambda f: json.dump(records, f, indent=2))
    return path


def sweep_leaderboard(sweep_dir: str | Path, jobs: Sequence[Any] = ()) -> Leaderboard:
    """Called when a multirun ends: jobs.json, leaderboard.csv and leaderboard.md."""
    sweep = Path(sweep_dir)
    if jobs:
        write_jobs(sweep, jobs)
    board = build_leaderboard(collect_runs([sweep]))
    write_leaderboard(sweep, board)
    return board


def mean_curves(board: Leaderboard) -> dict[str, dict[str, list[float]]]:
    """Per row: validation curves averaged over its seeds (truncated to the shortest run)."""

    curves: dict[str, dict[str, list[float]]] = {}
    for row, members in zip(board.rows, board.groups, strict=True):
        series = [
            read_metrics(m.folder.metrics_csv) for m in members if m.folder.metrics_csv.is_file()
        ]
        if not series:
            continue
        length = min(len(s.get("epoch", [])) for s in series)
        label = " ".join(f"{c}={row[c]}" for c in board.columns if c != "config") or row.get(
            "config", ""
        )
        averaged: dict[str, list[float]] = {"epoch": series[0]["epoch"][:length]}
        for key in (board.metric, "val_accuracy", "val_loss"):
            if all(key in s for s in series):
                averaged[key] = [statistics.fmean(s[key][i] for s in series) for i in range(length)]
        curves[f"{row['rank']}. {label} (n={row['n']})"] = averaged
    return curves
