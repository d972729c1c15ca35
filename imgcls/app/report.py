"""Rebuilding a leaderboard, or writing the HTML report, from run and sweep folders
(``imgcls report``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.folders import claim_dir
from imgcls.base.record import SweepFolder
from imgcls.evaluate.html_report import write_report
from imgcls.evaluate.leaderboard import (
    Leaderboard,
    build_leaderboard,
    collect_runs,
    mean_curves,
    write_leaderboard,
)
from imgcls.evaluate.plots import plot_validation_curves


@dataclass
class ReportResult:
    """What :func:`report` wrote: the HTML page, or the leaderboard's files (and its plot)."""

    html: Path | None = None
    board: Leaderboard | None = None
    runs: int = 0
    files: list[Path] = field(default_factory=list)
    plot: Path | None = None


def report(
    dirs: Sequence[str | Path],
    *,
    html: bool = False,
    plot: bool = False,
    out: str | Path | None = None,
) -> ReportResult:
    """The leaderboard of the runs under ``dirs`` (leaderboard.csv and .md, and with ``plot``
    val_curves.png), or with ``html`` one self-contained report.html.

    The leaderboard goes into ``out``, else into the one folder given, else into a new
    ``outputs/reports/<date>_<time>``; the page into ``out`` (a file or a folder), else into
    the first folder given.
    """
    if not dirs:
        raise UserError("imgcls report needs at least one run or sweep directory")
    if html and plot:
        raise UserError(
            "--plot draws val_curves.png for the leaderboard; the --html report has its own "
            "charts: use one of them"
        )
    if html:
        return ReportResult(html=write_report([str(d) for d in dirs], out))
    runs = collect_runs([str(d) for d in dirs])
    board = build_leaderboard(runs)
    if out is not None:
        out_dir = Path(out)
    elif len(dirs) == 1:
        out_dir = Path(dirs[0])
    else:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out_dir = Path(claim_dir(str(Path("outputs") / "reports" / stamp)))
    result = ReportResult(
        board=board, runs=len(runs), files=list(write_leaderboard(out_dir, board))
    )
    if plot:
        curves = mean_curves(board)
        if not curves:
            raise UserError("no metrics.csv found to plot: the runs have no per-epoch metrics")
        result.plot = plot_validation_curves(
            curves, SweepFolder(out_dir).val_curves_png, board.metric
        )
    return result
