"""``imgcls report <dir> [<dir> ...] [--plot] [--out DIR]``: rebuild and print a leaderboard;
``imgcls report --html <dir> [<dir> ...] [--out PATH]``: write the self-contained report.html.
``--baseline <override>=<value> [--metric NAME] [--target VALUE]`` add each row's difference
to the baseline row (95 % interval, p-value) and its time to a target, to either.

The options are read by :mod:`argparse`, whose mistakes become the one-line error of every
command (exit 2) instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from imgcls.app.report import ReportResult, report
from imgcls.base.errors import UserError, did_you_mean
from imgcls.commands.options import OneLineParser
from imgcls.evaluate.comparison import Comparison, caption
from imgcls.evaluate.leaderboard import (
    Leaderboard,
    comparison_span,
    interval_rows,
    table_rows,
)

DESCRIPTION = """Writes leaderboard.csv and leaderboard.md (into the directory when one is given, else into
--out, default outputs/reports/<date>_<time>) and prints the table. --plot also writes
val_curves.png: the validation curves of every row, averaged over seeds.

--html writes one self-contained report.html instead (it opens offline in any browser): for
one run folder, that run's report; for a sweep folder or several folders, the leaderboard
(sortable), the overrides that differ, every run's validation curves, each parameter against
the objective, with links to each run's own report.html (written into each run folder too).
--out is a file name ending in .html or a folder for report.html; by default the report goes
into the first folder given.

Each row shows mean ± std [95 % confidence interval of the mean] over its seeds and folds.
--baseline augment=none adds, per row, the difference of its mean to that row's (the test
figure, or --metric NAME), its 95 % interval and a two-sided p-value: a paired t-test over
runs of the same seed and fold when both rows have the same seeds and folds, Welch's
otherwise. --target 0.93 adds the training seconds until the monitored validation metric
first reached 0.93 (mean over the runs that reached it) and how many runs did."""
OPTIONS = ("--baseline", "--html", "--metric", "--out", "--plot", "--target")


def parser() -> OneLineParser:
    """The arguments of ``imgcls report``; ``--help`` is answered by :func:`run_report`."""
    parse = OneLineParser(
        "report",
        "imgcls report [--html] <run or sweep dir> [<dir> ...] [--plot] [--out PATH]\n"
        "                     [--baseline <override>=<value> [--metric NAME]] [--target VALUE]",
        DESCRIPTION,
    )
    parse.add_argument("dirs", nargs="*", metavar="DIR", help="run or sweep folders")
    parse.add_argument("--html", action="store_true", help="write report.html instead")
    parse.add_argument("--plot", action="store_true", help="also write val_curves.png")
    parse.add_argument("--out", metavar="PATH", help="where the leaderboard or page goes")
    parse.add_argument(
        "--baseline", metavar="OVERRIDE=VALUE", help="compare every row with this row"
    )
    parse.add_argument("--metric", metavar="NAME", help="the figure compared (default: test)")
    parse.add_argument(
        "--target", metavar="VALUE", help="time to this validation score (e.g. 0.93)"
    )
    return parse


def target_value(text: str | None) -> float | None:
    """``--target``'s number; anything else is one line naming it."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(
            f"--target {text!r} is not a number: give the validation score to reach, "
            "e.g. --target 0.93"
        ) from None


def comparison(options: argparse.Namespace) -> Comparison:
    """The comparison the options ask for (checked: a bad value is one line)."""
    return Comparison(options.baseline, options.metric, target_value(options.target))


def parse_arguments(args: Sequence[str]) -> argparse.Namespace:
    """The parsed options; an unknown option is one line with a did-you-mean."""
    parse = parser()
    options, unknown = parse.parse_known_intermixed_args(list(args))
    if unknown:
        option = unknown[0].split("=", 1)[0]
        hint = did_you_mean(option, OPTIONS) or ";"
        raise UserError(f"unknown report option '{option}'{hint} available: {', '.join(OPTIONS)}")
    if options.out == "":
        parse.error("--out needs a path (with --html also a file: --out report.html)")
    return options


def run_report(args: Sequence[str]) -> int:
    """``imgcls report``: parse, build the leaderboard or the page, print what was written."""
    options = parse_arguments(args)
    if options.help:
        print(parser().format_help().rstrip())
        return 0
    result = report(
        options.dirs,
        html=options.html,
        plot=options.plot,
        out=options.out,
        comparison=comparison(options),
    )
    print_result(result)
    return 0


def print_result(result: ReportResult) -> None:
    """The page's path and size, or the leaderboard's table, its failed runs and its files."""
    if result.html is not None:
        print(f"report: {result.html} ({result.html.stat().st_size / 1024:.0f} KB)")
    if result.board is not None:
        print_leaderboard(result.board, result.runs)
        print(f"leaderboard: {' '.join(str(p) for p in result.files)}")
    if result.plot is not None:
        print(f"plot: {result.plot}")


def print_leaderboard(board: Leaderboard, runs: int) -> None:
    """The leaderboard as a table, then one line per failed or unfinished run. The 95 %
    intervals and the columns of a comparison (--baseline, --target) come in tables of their
    own, so that each stays readable in a terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, cells = table_rows(board, intervals=False)
    compared = comparison_span(board)
    named = list(range(len(board.columns) + 2))  # rank, the settings, n
    main = [i for i in range(len(header)) if i not in compared]
    tables = [(f"{len(board.rows)} configurations, {runs} runs", header, cells, main)]
    interval_header, interval_cells = interval_rows(board)
    if interval_cells:
        title = "95 % confidence intervals of the means (t distribution)"
        indexes = list(range(len(interval_header)))
        tables.append((title, interval_header, interval_cells, indexes))
    if compared:
        tables.append((caption(board), header, cells, [*named, *compared]))
    console = Console(width=160)
    for title, names, rows, indexes in tables:
        table = Table(*(names[i] for i in indexes), title=escape(title), box=None)
        for row in rows:  # `regularizer=[l2sp]` is not markup
            table.add_row(*(escape(row[i]) for i in indexes))
        console.print(table)
    for run in board.failed:
        console.print(
            f"[red]{run.status}[/red]: {' '.join(run.overrides)} ({run.run_dir}): {run.error}",
            markup=True,
            highlight=False,
        )
