"""``imgcls report <dir> [<dir> ...] [--plot] [--out DIR]``: rebuild and print a leaderboard;
``imgcls report --html <dir> [<dir> ...] [--out PATH]``: write the self-contained report.html.

The options are read by :mod:`argparse`, whose mistakes become the one-line error of every
command (exit 2) instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from imgcls.app.report import ReportResult, report
from imgcls.base.errors import UserError, did_you_mean
from imgcls.commands.options import OneLineParser
from imgcls.evaluate.leaderboard import Leaderboard, table_rows

DESCRIPTION = """Writes leaderboard.csv and leaderboard.md (into the directory when one is given, else into
--out, default outputs/reports/<date>_<time>) and prints the table. --plot also writes
val_curves.png: the validation curves of every row, averaged over seeds.

--html writes one self-contained report.html instead (it opens offline in any browser): for
one run folder, that run's report; for a sweep folder or several folders, the leaderboard
(sortable), the overrides that differ, every run's validation curves, each parameter against
the objective, with links to each run's own report.html (written into each run folder too).
--out is a file name ending in .html or a folder for report.html; by default the report goes
into the first folder given."""
OPTIONS = ("--html", "--out", "--plot")


def parser() -> OneLineParser:
    """The arguments of ``imgcls report``; ``--help`` is answered by :func:`run_report`."""
    parse = OneLineParser(
        "report",
        "imgcls report [--html] <run or sweep dir> [<dir> ...] [--plot] [--out PATH]",
        DESCRIPTION,
    )
    parse.add_argument("dirs", nargs="*", metavar="DIR", help="run or sweep folders")
    parse.add_argument("--html", action="store_true", help="write report.html instead")
    parse.add_argument("--plot", action="store_true", help="also write val_curves.png")
    parse.add_argument("--out", metavar="PATH", help="where the leaderboard or page goes")
    return parse


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
    result = report(options.dirs, html=options.html, plot=options.plot, out=options.out)
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
    """The leaderboard as a table, then one line per failed or unfinished run."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, cells = table_rows(board)
    table = Table(*header, title=f"{len(board.rows)} configurations, {runs} runs", box=None)
    for row in cells:
        table.add_row(*(escape(cell) for cell in row))  # `regularizer=[l2sp]` is not markup
    console = Console(width=160)
    console.print(table)
    for run in board.failed:
        console.print(
            f"[red]{run.status}[/red]: {' '.join(run.overrides)} ({run.run_dir}): {run.error}",
            markup=True,
            highlight=False,
        )
