"""Rebuilding a leaderboard, or writing the HTML report, from run and sweep folders
(``imgcls report``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imgcls.base.errors import UserError
from imgcls.base.folders import (
    check_output_dir,
    claim_dir,
    refuse_foreign_file,
    written_by_imgcls,
)
from imgcls.base.record import SweepFolder
from imgcls.evaluate.comparison import Comparison
from imgcls.evaluate.html_report import output_path, write_report
from imgcls.evaluate.leaderboard import (
    Leaderboard,
    build_leaderboard,
    collect_runs,
    mean_curves,
    write_leaderboard,
)
from imgcls.evaluate.out_of_fold import write_out_of_fold
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
    comparison: Comparison | None = None,
) -> ReportResult:
    """The leaderboard of the runs under ``dirs`` (leaderboard.csv and .md, and with ``plot``
    val_curves.png), or with ``html`` one self-contained report.html; ``comparison`` adds
    each row's difference to a baseline row and its time to a target to either.

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
        check_page_place(dirs, out)
        if comparison is not None and comparison.active:  # a bad baseline: before any file
            build_leaderboard(collect_runs([str(d) for d in dirs]), comparison)
        return ReportResult(html=write_report([str(d) for d in dirs], out, comparison=comparison))
    if out is not None:
        check_output_dir(out, "--out", is_leaderboard_output, "report folder")
    elif len(dirs) == 1:
        check_leaderboard_files(Path(dirs[0]), plot)
    runs = collect_runs([str(d) for d in dirs])
    board = build_leaderboard(runs, comparison)
    if out is not None:
        out_dir = Path(out)
    elif len(dirs) == 1:
        out_dir = Path(dirs[0])
    else:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out_dir = Path(claim_dir(str(Path("outputs") / "reports" / stamp)))
    try:
        files = list(write_leaderboard(out_dir, board))
    except OSError as error:
        raise UserError(
            f"cannot write the leaderboard into {out_dir}: {error.strerror or error} "
            "(write it elsewhere with --out DIR)"
        ) from error
    files += write_out_of_fold(out_dir, [run.folder for run in runs])  # k-fold sweeps only
    result = ReportResult(board=board, runs=len(runs), files=files)
    if plot:
        curves = mean_curves(board)
        if not curves:
            raise UserError("no metrics.csv found to plot: the runs have no per-epoch metrics")
        result.plot = plot_validation_curves(
            curves, SweepFolder(out_dir).val_curves_png, board.metric
        )
    return result


# What imgcls writes at the top of its report and leaderboard files: a file of that name
# without it is the user's, and is never overwritten.
PAGE_MARK = b'<meta name="generator" content="imgcls report">'
LEADERBOARD_MARKS = {"leaderboard_csv": b"rank,", "leaderboard_md": b"# Leaderboard"}
PLOT_MARK = b"Matplotlib"


def check_page_place(dirs: Sequence[str | Path], out: str | Path | None) -> None:
    """Where report.html goes: a file of that name there must be an earlier imgcls report,
    and a folder the user named with ``--out`` must be new, empty or hold an earlier one."""
    if out is not None and Path(out).suffix.lower() not in (".html", ".htm"):
        check_output_dir(out, "--out", is_page_output, "report folder")
    page = output_path(dirs, out)
    refuse_foreign_file(page, PAGE_MARK, "choose another file with --out PATH.html")


def is_page_output(folder: Path) -> bool:
    """True for a folder holding an earlier report.html that imgcls wrote."""
    return written_by_imgcls(SweepFolder(folder).report_html, PAGE_MARK)


def is_leaderboard_output(folder: Path) -> bool:
    """True for a folder holding an earlier leaderboard that imgcls wrote."""
    return written_by_imgcls(
        SweepFolder(folder).leaderboard_csv, LEADERBOARD_MARKS["leaderboard_csv"]
    )


def check_leaderboard_files(folder: Path, plot: bool) -> None:
    """The leaderboard files about to be written into ``folder``: each one there already
    must be imgcls's own (an earlier leaderboard), never a file of the user's."""
    sweep = SweepFolder(folder)
    marks = {getattr(sweep, name): mark for name, mark in LEADERBOARD_MARKS.items()}
    if plot:
        marks[sweep.val_curves_png] = PLOT_MARK
    for path, mark in marks.items():
        refuse_foreign_file(path, mark, "write the leaderboard elsewhere with --out DIR")
