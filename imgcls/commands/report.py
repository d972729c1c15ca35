"""``imgcls report <dir> [<dir> ...] [--plot] [--out DIR]``: rebuild and print a leaderboard;
``imgcls report --html <dir> [<dir> ...] [--out PATH]``: write the self-contained report.html."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir
from imgcls.evaluate.html_report import write_report
from imgcls.evaluate.leaderboard import (
    build_leaderboard,
    collect_runs,
    mean_curves,
    table_rows,
    write_leaderboard,
)
from imgcls.evaluate.plots import plot_validation_curves

USAGE = """usage: imgcls report <run or sweep dir> [<dir> ...] [--plot] [--out DIR]
       imgcls report --html <run or sweep dir> [<dir> ...] [--out PATH]

Writes leaderboard.csv and leaderboard.md (into the directory when one is given, else into
--out, default outputs/reports/<date>_<time>) and prints the table. --plot also writes
val_curves.png: the validation curves of every row, averaged over seeds.

--html writes one self-contained report.html instead (it opens offline in any browser): for
one run folder, that run's report; for a sweep folder or several folders, the leaderboard
(sortable), the overrides that differ, every run's validation curves, each parameter against
the objective, with links to each run's own report.html (written into each run folder too).
--out is a file name ending in .html or a folder for report.html; by default the report goes
into the first folder given."""

OPTIONS = "--html, --plot, --out PATH"


def parse(args: Sequence[str]) -> tuple[list[str], bool, str | None, bool]:
    dirs: list[str] = []
    plot, out, html = False, None, False
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg == "--plot":
            plot = True
        elif arg == "--html":
            html = True
        elif arg == "--out" or arg.startswith("--out="):
            out = arg.split("=", 1)[1] if "=" in arg else (items.pop(0) if items else None)
            if not out:
                raise UserError(
                    "--out needs a path: imgcls report <dir> --out reports/ "
                    "(with --html also a file: --out report.html)"
                )
        elif arg.startswith("-"):
            raise UserError(f"unknown report option '{arg}'; available: {OPTIONS}")
        else:
            dirs.append(arg)
    if not dirs:
        raise UserError("imgcls report needs at least one run or sweep directory")
    if html and plot:
        raise UserError(
            "--plot draws val_curves.png for the leaderboard; the --html report has its own "
            "charts: use one of them"
        )
    return dirs, plot, out, html


def run_report(args: Sequence[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0

    dirs, plot, out, html = parse(args)
    if html:
        path = write_report(dirs, out)
        print(f"report: {path} ({path.stat().st_size / 1024:.0f} KB)")
        return 0
    runs = collect_runs(dirs)
    board = build_leaderboard(runs)
    if out is not None:
        out_dir = Path(out)
    elif len(dirs) == 1:
        out_dir = Path(dirs[0])
    else:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out_dir = Path(claim_dir(str(Path("outputs") / "reports" / stamp)))
    csv_path, md_path = write_leaderboard(out_dir, board)

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, cells = table_rows(board)
    table = Table(*header, title=f"{len(board.rows)} configurations, {len(runs)} runs", box=None)
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
    print(f"leaderboard: {csv_path} {md_path}")
    if plot:
        curves = mean_curves(board)
        if not curves:
            raise UserError("no metrics.csv found to plot: the runs have no per-epoch metrics")
        path = plot_validation_curves(curves, out_dir / "val_curves.png", board.metric)
        print(f"plot: {path}")
    return 0
