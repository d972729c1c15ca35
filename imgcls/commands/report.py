"""``imgcls report <dir> [<dir> ...] [--plot] [--out DIR]``: rebuild and print a leaderboard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir
from imgcls.evaluate.leaderboard import (
    build_leaderboard,
    collect_runs,
    mean_curves,
    table_rows,
    write_leaderboard,
)
from imgcls.evaluate.plots import plot_validation_curves

USAGE = """usage: imgcls report <run or sweep dir> [<dir> ...] [--plot] [--out DIR]

Writes leaderboard.csv and leaderboard.md (into the directory when one is given, else into
--out, default outputs/reports/<date>_<time>) and prints the table. --plot also writes
val_curves.png: the validation curves of every row, averaged over seeds."""


def parse(args: Sequence[str]) -> tuple[list[str], bool, str | None]:
    dirs: list[str] = []
    plot, out = False, None
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg == "--plot":
            plot = True
        elif arg == "--out" or arg.startswith("--out="):
            out = arg.split("=", 1)[1] if "=" in arg else (items.pop(0) if items else None)
            if not out:
                raise UserError("--out needs a folder: imgcls report <dir> --out reports/")
        elif arg.startswith("-"):
            raise UserError(f"unknown report option '{arg}'; available: --plot, --out DIR")
        else:
            dirs.append(arg)
    if not dirs:
        raise UserError("imgcls report needs at least one run or sweep directory")
    return dirs, plot, out


def run_report(args: Sequence[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0

    dirs, plot, out = parse(args)
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
