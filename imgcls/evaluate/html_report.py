"""``report.html``: one self-contained page for a run, or for a sweep or any set of runs.

The page is rendered with Jinja2 (``templates/``, autoescaped: class names, overrides and
paths from the files are text, never markup) and needs nothing but itself: the CSS and the
small table-sorting script are inline, the charts are inline SVG drawn from metrics.csv, and
the prediction grid is the run's own PNG as a data URI. A Content-Security-Policy in the page
forbids every fetch (``default-src 'none'``), and only the script whose hash it names runs.

Each part of a page is built and rendered on its own: a part whose files are missing or
damaged is shown as missing with the reason, and the rest of the page is still written.
Only files are read (no torch), so ``imgcls report --html`` answers at once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import os
import shlex
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from imgcls.base.atomic import atomic_write
from imgcls.base.errors import UserError, one_line
from imgcls.base.folders import ensure_dir
from imgcls.base.record import RunFolder, RunOverride, Summary, SweepFolder
from imgcls.evaluate import charts
from imgcls.evaluate.comparison import Comparison
from imgcls.evaluate.comparison import notes as comparison_notes
from imgcls.evaluate.comparison import sort_values as comparison_sort_values
from imgcls.evaluate.leaderboard import (
    Leaderboard,
    RunInfo,
    build_leaderboard,
    collect_runs,
    count_text,
    setting_values,
    table_rows,
)
from imgcls.evaluate.plots import read_metrics

logger = logging.getLogger("imgcls")

TEMPLATES = Path(__file__).resolve().with_name("templates")
MAX_EPOCH_ROWS = 1000  # a per-epoch table longer than this shows its first and last rows
# The task of a multi-label run (imgcls.data.targets.MULTILABEL; that module imports torch).
MULTILABEL = "multilabel"


class Absent(Exception):
    """A part of the page whose files are not there (shown as missing, with this reason)."""


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.lru_cache(maxsize=1)
def _script() -> tuple[str, str]:
    """The page's one script and its CSP hash (so that no other script can run)."""
    text = (TEMPLATES / "sort.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return text, f"sha256-{digest}"


def _module(name: str):
    return _environment().get_template(name).module


def _part(
    name: str,
    title: str,
    build: Callable[[], dict[str, Any]],
    macros: Any,
    macro: str | None = None,
) -> dict:
    """Render one part (with the macro ``name``, or ``macro`` where the part's content
    depends on the run); what fails (a missing or damaged file, anything) is shown as missing."""
    try:
        html = getattr(macros, macro or name)(**build())
    except Absent as reason:
        html = _module("tables.html.j2").missing(str(reason))
    except Exception as error:  # noqa: BLE001 - a broken part never breaks the page
        logger.debug("report part %s failed", name, exc_info=True)
        html = _module("tables.html.j2").missing(
            f"could not be read: {one_line(error, typed=True)}"
        )
    return {"id": name, "title": title, "html": html}


def _page(title: str, subtitle: str, parts: Sequence[dict]) -> str:
    script, script_hash = _script()
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            title=title,
            subtitle=subtitle,
            parts=parts,
            style=_style(),
            script=script,
            script_hash=script_hash,
            generated=datetime.now().isoformat(timespec="seconds"),
        )
    )


@functools.lru_cache(maxsize=1)
def _style() -> str:
    return (TEMPLATES / "style.css").read_text(encoding="utf-8")


# --- reading files -----------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    if not path.is_file():
        raise Absent(f"no {path.parent.name}/{path.name}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise Absent(f"no {path.name}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def _summary(run: RunFolder) -> Summary | None:
    try:
        return run.read_summary()
    except UserError:
        return None


def _overrides(run: RunFolder) -> list[RunOverride]:
    path = run.overrides_file
    if not path.is_file():
        raise Absent(f"no {path.parent.name}/{path.name}")
    return run.read_overrides()


def _metrics(run: RunFolder) -> dict[str, list[float]]:
    path = run.metrics_csv
    if not path.is_file():
        raise Absent("no metrics.csv (the run finished no epoch)")
    columns = read_metrics(path)
    if not columns.get("epoch"):
        raise Absent("metrics.csv has no rows")
    return columns


def _image(path: Path) -> str:
    """A PNG file as a data URI."""
    if not path.is_file():
        raise Absent(f"no {path.parent.name}/{path.name}")
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path.name} is not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _text(value: Any) -> str:
    """A value for a table cell: metrics in [0, 1] with 4 decimals, other numbers with 5
    significant digits, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) <= 1 and (value == 0 or abs(value) >= 1e-3):
            return f"{value:.4f}"
        return f"{value:.5g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _seconds(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _text(value)


def _sort_key(value: Any) -> str:
    """data-value of a cell: the number a column sorts by ('' sorts last)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return repr(float(value))
    return ""


def _command(overrides: Sequence[str], multirun: bool = False) -> str:
    words = ["imgcls", "train", *(["-m"] if multirun else []), *overrides]
    return " ".join(shlex.quote(w) for w in words)


def _link(target: Path, page: Path) -> str:
    """A relative link from ``page`` to ``target``: ./-prefixed and percent-encoded, so a
    folder named ``javascript:...`` or holding '#' or '?' is still a path."""
    try:
        relative = os.path.relpath(target.resolve(), page.resolve().parent)
    except ValueError:  # another drive (Windows)
        relative = str(target.resolve())
    quoted = urllib.parse.quote(Path(relative).as_posix())
    return quoted if quoted.startswith(("../", "/")) else f"./{quoted}"


# --- one run -----------------------------------------------------------------------------


def _run_overview(run: RunFolder, summary: Summary | None) -> dict[str, Any]:
    if summary is None:
        raise Absent("no readable summary.json")
    best, test = summary.best or {}, summary.test or {}
    what = [
        ("model", summary.model),
        ("dataset", summary.dataset),
        ("method", summary.method),
        ("seed", summary.seed),
        ("started", summary.started_at),
        ("finished", summary.finished_at),
    ]
    results = [
        ("epochs", summary.epochs_completed),
        ("best epoch", best.get("epoch")),
        (f"best {best.get('metric', 'value')}", best.get("value")),
        *_test_headline(test),
        ("test loss", test.get("loss")),
        ("stopped early", summary.stopped_early),
        ("training seconds", summary.train_seconds),
        ("wall seconds", summary.wall_seconds),
    ]
    return {
        "status": summary.status,
        "error": summary.error or "",
        "what": [(k, _text(v)) for k, v in what if v is not None],
        "results": [(k, _text(v)) for k, v in results if v is not None],
        "path": str(run.path.resolve()),
    }


# A multi-label run's headline test figures (summary.json ``test`` keys); its ``accuracy`` is
# the subset accuracy, shown under that name.
MULTILABEL_HEADLINE = (
    ("test mAP", "map"),
    ("test micro F1", "f1_micro"),
    ("test macro F1", "f1_macro"),
    ("test subset accuracy", "subset_accuracy"),
    ("test Hamming loss", "hamming_loss"),
)


def _test_headline(test: dict[str, Any]) -> list[tuple[str, Any]]:
    """The test figures of the overview: accuracy and balanced accuracy, or a multi-label
    run's mAP, F1s, subset accuracy and Hamming loss."""
    if any(key in test for _, key in MULTILABEL_HEADLINE):
        return [(name, test.get(key)) for name, key in MULTILABEL_HEADLINE]
    return [
        ("test accuracy", test.get("accuracy")),
        ("test balanced accuracy", test.get("balanced_accuracy")),
    ]


def _is_multilabel(run: RunFolder, summary: Summary | None) -> bool:
    """Whether the run had several labels per image: its data spec or tuned thresholds say
    so, or (summary.json unreadable) its test_metrics.json does."""
    if summary is not None:
        if (summary.data or {}).get("task") == MULTILABEL or summary.thresholds:
            return True
        if summary.data is not None:
            return False
    try:
        return _json_object(run.test_metrics_json).get("task") == MULTILABEL
    except Exception:  # noqa: BLE001 - missing or damaged: the test part says so
        return False


def _run_command(run: RunFolder) -> dict[str, Any]:
    overrides = [o.text for o in _overrides(run)]
    if not run.config_file.is_file():
        raise Absent("no .hydra/config.yaml")
    return {
        "command": _command(overrides),
        "overrides": overrides,
        "config": run.config_file.read_text(encoding="utf-8"),
    }


def _run_environment(summary: Summary | None) -> dict[str, Any]:
    if summary is None:
        raise Absent("no readable summary.json")
    throughput = summary.throughput or {}
    params, flops = summary.params, summary.flops
    facts = [
        ("device", summary.device),
        ("precision", summary.precision),
        ("git commit", summary.git_commit),
        ("config hash", summary.config_hash),
        ("parameters", f"{count_text(params)} ({params:,})" if isinstance(params, int) else None),
        (
            "FLOPs per image (forward)",
            f"{count_text(flops)} ({flops:,})" if isinstance(flops, int) else None,
        ),
        ("training images/s", throughput.get("images_per_second")),
        ("TFLOP/s", throughput.get("tflops")),
        ("MFU", throughput.get("mfu")),
    ]
    versions, timings = summary.versions or {}, summary.timings or {}
    hyper = summary.hyperparameters
    return {
        "facts": [(k, _text(v)) for k, v in facts if v is not None],
        "versions": [(str(k), _text(v)) for k, v in versions.items()],
        "timings": [(str(k), _seconds(v)) for k, v in timings.items() if v is not None],
        "hyperparameters": json.dumps(hyper, indent=2, default=str) if hyper else "",
    }


def _run_curves(run: RunFolder) -> dict[str, Any]:
    columns = _metrics(run)
    epochs = columns["epoch"]
    found = []
    for kind in ("loss", "accuracy"):
        lines = [
            (f"{split} {kind}", epochs, columns[f"{split}_{kind}"])
            for split in ("train", "val")
            if f"{split}_{kind}" in columns
        ]
        if kind == "accuracy" and "val_top5_accuracy" in columns:
            lines.append(("val top-5 accuracy", epochs, columns["val_top5_accuracy"]))
        if kind == "accuracy" and "val_map" in columns:  # a multi-label run's monitor
            lines.append(("val mAP", epochs, columns["val_map"]))
        if lines:
            dashed = [i >= 2 for i in range(len(lines))]
            found.append(
                charts.line_chart(kind, "epoch", kind, lines, dashed=dashed, integer_x=True)
            )
    if "lr" in columns:
        found.append(
            charts.line_chart(
                "learning rate (first step of each epoch)",
                "epoch",
                "learning rate",
                [("lr", epochs, columns["lr"])],
                colors=[charts.PALETTE[2]],
                integer_x=True,
            )
        )
    if not found:
        raise Absent("metrics.csv has no loss, accuracy or lr column")
    return {"charts": found}


def _run_epochs(run: RunFolder) -> dict[str, Any]:
    path = run.metrics_csv
    if not path.is_file():
        raise Absent("no metrics.csv (the run finished no epoch)")
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise Absent("metrics.csv has no rows")
    header, body = rows[0], rows[1:]
    skipped = 0
    if len(body) > MAX_EPOCH_ROWS:
        skipped = len(body) - MAX_EPOCH_ROWS
        body = body[: MAX_EPOCH_ROWS // 2] + body[-MAX_EPOCH_ROWS // 2 :]
    return {"header": header, "rows": [_csv_cells(row) for row in body], "skipped": skipped}


def _csv_cells(row: Sequence[str]) -> list[tuple[str, str]]:
    cells = []
    for value in row:
        try:
            number = float(value)
        except ValueError:
            cells.append((value, ""))
            continue
        cells.append(
            (f"{number:.5g}" if "." in value or "e" in value else value, _sort_key(number))
        )
    return cells


def _classes_table(metrics: dict[str, Any]) -> dict[str, Any]:
    """Per-class rows and the confusion matrix (counts, shaded by the row's share)."""
    per_class = metrics.get("per_class") if isinstance(metrics.get("per_class"), list) else []
    rows = [
        (
            str(r.get("class", "")),
            [(_text(r.get(k)), _sort_key(r.get(k))) for k in ("precision", "recall", "f1")],
            (_text(r.get("support")), _sort_key(r.get("support"))),
        )
        for r in per_class
        if isinstance(r, dict)
    ]
    classes = [str(c) for c in metrics.get("classes") or [r[0] for r in rows]]
    matrix = metrics.get("confusion_matrix")
    cells: list[tuple[str, list[tuple[int, float]]]] = []
    if isinstance(matrix, list) and len(matrix) == len(classes):
        for name, counts in zip(classes, matrix, strict=True):
            counts = [int(c) for c in counts]
            total = sum(counts) or 1
            cells.append((name, [(c, c / total) for c in counts]))
    scalars = [
        (k, _text(v))
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return {"per_class": rows, "classes": classes, "matrix": cells, "scalars": scalars}


def _test_files(
    run: RunFolder, summary: Summary | None, missing: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """summary.json's test figures, test_metrics.json's details, and a note naming what is
    ``missing`` when only the summary has them (Absent when neither has)."""
    test = (summary.test if summary is not None else None) or {}
    path = run.test_metrics_json
    if path.is_file():
        return test, _json_object(path), ""
    if not test:
        raise Absent("no test metrics (the run did not finish its test)")
    return test, {}, f"no {path.name}, so no {missing} (imgcls eval run={run.path} computes them)"


def _run_test(run: RunFolder, summary: Summary | None) -> dict[str, Any]:
    test, details, note = _test_files(run, summary, "per-class figures or confusion matrix")
    table = _classes_table(details) if details else {"per_class": [], "classes": [], "matrix": []}
    return {
        "summary": [(str(k), _text(v)) for k, v in test.items() if not isinstance(v, dict)],
        "source": _source(details),
        "note": note,
        **table,
    }


def _source(details: dict[str, Any]) -> str:
    """Where test_metrics.json's figures come from: split, checkpoint, test-time augmentation."""
    source = ", ".join(f"{details[k]} {k}" for k in ("split", "checkpoint") if details.get(k))
    if details.get("tta") not in (None, "", "none"):
        source += f", test-time augmentation {details['tta']}"
    elif details:
        source += ", without test-time augmentation"
    return source


LABEL_COLUMNS = ("ap", "precision", "recall", "f1")


def _label_rows(metrics: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """A multi-label per-label table (``per_label`` of test_metrics.json or an eval's
    metrics.json): class, AP, precision, recall, F1, support and threshold cells."""
    per_label = metrics.get("per_label") if isinstance(metrics.get("per_label"), list) else []
    return [
        (
            str(r.get("class", "")),
            [
                (_text(r.get(k)), _sort_key(r.get(k)))
                for k in (*LABEL_COLUMNS, "support", "threshold")
            ],
        )
        for r in per_label
        if isinstance(r, dict)
    ]


def _run_multilabel_test(run: RunFolder, summary: Summary | None) -> dict[str, Any]:
    """A multi-label run's test figures: summary.json's, and test_metrics.json's with the
    per-label AP, precision, recall, F1, support and decision threshold."""
    test, details, note = _test_files(run, summary, "per-label figures")
    scalars = [
        (k, _text(v))
        for k, v in details.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    left_out = details.get("map_left_out")
    return {
        "summary": [(str(k), _text(v)) for k, v in test.items() if not isinstance(v, dict)],
        "source": _source(details),
        "note": note,
        "scalars": scalars,
        "per_label": _label_rows(details),
        "left_out": [str(c) for c in left_out] if isinstance(left_out, list) else [],
    }


CALIBRATION_FIGURES = (("ECE", "ece"), ("MCE", "mce"), ("NLL", "nll"), ("Brier", "brier"))


def _run_calibration(run: RunFolder, summary: Summary | None) -> dict[str, Any]:
    """ECE, MCE, NLL and Brier score on the test split (summary.json's ``test``), before and
    after temperature scaling when the run was calibrated, and plots/reliability.png."""
    test = (summary.test if summary is not None else None) or {}
    block = (summary.calibration if summary is not None else None) or {}
    if not any(key in test for _, key in CALIBRATION_FIGURES) and not block:
        raise Absent("no calibration figures in summary.json (a run older than them)")
    header = ["figure", "test split"]
    before, after = block.get("before") or {}, block.get("after") or {}
    if block:
        header = ["figure", "before scaling", f"after (T = {_text(block.get('temperature'))})"]
    rows = []
    for name, key in CALIBRATION_FIGURES:
        cells = [_text(before.get(key, test.get(key)))] if block else [_text(test.get(key))]
        if block:
            cells.append(_text(after.get(key)))
        rows.append([name, *cells])
    try:
        image = _image(run.reliability_png)
    except Absent:
        image = ""  # trainer.plots=false: the figures without the diagram
    return {"header": header, "rows": rows, "image": image, "calibrated": bool(block)}


def _run_pr_curves(run: RunFolder) -> dict[str, Any]:
    return {"image": _image(run.pr_curves_png)}


def _run_predictions(run: RunFolder, multilabel: bool = False) -> dict[str, Any]:
    return {"image": _image(run.predictions_png), "multilabel": multilabel}


def _run_cam(run: RunFolder) -> dict[str, Any]:
    return {"image": _image(run.cam_png)}


def _run_eval(run: RunFolder) -> dict[str, Any]:
    found = run.eval_metrics_files()
    if not found:
        raise Absent("no eval/ results (imgcls eval run=<this run> writes them)")
    results = []
    for path in found:
        try:
            metrics = _json_object(path)
            table = _classes_table(metrics)
            setting = [
                (k, _text(metrics.get(k)))
                for k in ("split", "dataset", "checkpoints", "tta", "mode", "samples")
                if metrics.get(k) not in (None, "", [])
            ]
            results.append(
                {
                    "name": path.parent.name,
                    "error": "",
                    "setting": setting,
                    "per_label": _label_rows(metrics),
                    **table,
                }
            )
        except Exception as error:  # noqa: BLE001 - one damaged eval folder is listed as such
            results.append({"name": path.parent.name, "error": one_line(error, typed=True)})
    return {"results": results}


def run_page(run_dir: RunFolder | Path) -> str:
    """The HTML of one run's report."""
    run = RunFolder.of(run_dir)
    summary = _summary(run)
    macros = _module("run.html.j2")
    multilabel = _is_multilabel(run, summary)
    if multilabel:  # a per-label table and precision-recall curves; no confusion matrix
        test = [
            _part(
                "test",
                "Test metrics",
                lambda: _run_multilabel_test(run, summary),
                macros,
                "multilabel_test",
            ),
            _part("pr_curves", "Precision-recall curves", lambda: _run_pr_curves(run), macros),
        ]
    else:
        test = [_part("test", "Test metrics", lambda: _run_test(run, summary), macros)]
    parts = [
        _part("overview", "Run", lambda: _run_overview(run, summary), macros),
        _part("command", "Command and configuration", lambda: _run_command(run), macros),
        _part("environment", "Environment", lambda: _run_environment(summary), macros),
        _part("curves", "Curves", lambda: _run_curves(run), macros),
        _part("epochs", "Per-epoch metrics", lambda: _run_epochs(run), macros),
        *test,
        _part("calibration", "Calibration", lambda: _run_calibration(run, summary), macros),
        _part("predictions", "Predictions", lambda: _run_predictions(run, multilabel), macros),
        _part("cam", "Where the model looked", lambda: _run_cam(run), macros),
        _part("evaluations", "Evaluations (eval/)", lambda: _run_eval(run), macros),
    ]
    name = run.path.resolve().name
    facts = (summary.model, summary.dataset) if summary is not None else ()
    what = " · ".join(str(v) for v in facts if v)
    return _page(f"imgcls run {name}", what, parts)


# --- several runs (a sweep) ----------------------------------------------------------------


def _sweep_info(dirs: Sequence[Path], runs: Sequence[RunInfo]) -> dict[str, Any]:
    """What launched the sweep: the sweeper and its search space (a job's .hydra/hydra.yaml),
    the command (multirun.yaml, which the basic sweeper writes) and an Optuna search's best
    trial (optimization_results.yaml), for whichever of these files exist."""
    info: dict[str, Any] = {"sweeper": "", "command": "", "best": [], "space": []}
    hydra: dict[str, Any] = {}
    for folder in map(SweepFolder, dirs):
        if folder.multirun_yaml.is_file():
            multirun = _yaml(folder.multirun_yaml)
            hydra = (multirun.get("hydra") or {}) if isinstance(multirun, dict) else {}
            task = (hydra.get("overrides") or {}).get("task") or []
            info["command"] = _command([str(t) for t in task], multirun=True)
            break
    if not hydra:
        for run in runs:
            if run.folder.hydra_file.is_file():
                job = _yaml(run.folder.hydra_file)
                hydra = (job.get("hydra") or {}) if isinstance(job, dict) else {}
                break
    sweeper = hydra.get("sweeper") or {}
    if isinstance(sweeper, dict):
        target = str(sweeper.get("_target_", ""))
        info["sweeper"] = "Optuna" if "optuna" in target.lower() else target.rsplit(".", 1)[-1]
        settings = [(k, sweeper.get(k)) for k in ("direction", "n_trials", "study_name")]
        info["space"] = [(k, _text(v)) for k, v in settings if v is not None]
        params = sweeper.get("params")
        if isinstance(params, dict):
            info["space"] += [(str(k), _text(v)) for k, v in params.items()]
    for folder in map(SweepFolder, dirs):
        if folder.optimization_results_yaml.is_file():
            result = _yaml(folder.optimization_results_yaml)
            if isinstance(result, dict):
                params = result.get("best_params") or {}
                info["best"] = [(str(k), _text(v)) for k, v in params.items()]
                info["best"].append(("best value", _text(result.get("best_value"))))
            break
    return info


def _short(value: Any) -> str:
    """An override value for display: long numbers (an Optuna trial's 0.037861878865426045)
    to 4 significant digits; anything else as it is."""
    text = str(value)
    number = charts.finite_number(text)
    if number is None or len(text) <= 8:
        return text
    return f"{number:.4g}"


def _row_label(board: Leaderboard, row: dict[str, Any]) -> str:
    text = " ".join(f"{c}={_short(row[c])}" for c in board.columns if c != "config")
    return text or str(row.get("config", ""))


def _sweep_overview(dirs: Sequence[Path], runs: Sequence[RunInfo], board: Leaderboard):
    info = _sweep_info(dirs, runs)
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return {
        "folders": [str(d.resolve()) for d in dirs],
        "runs": len(runs),
        "configurations": len(board.rows),
        "statuses": sorted(statuses.items()),
        "metric": f"{board.metric} ({board.mode})",
        **info,
    }


def _leaderboard(board: Leaderboard, page: Path) -> dict[str, Any]:
    if not board.rows:
        raise Absent("no completed run")
    header, cells = table_rows(board)
    figures = [board.metric, *board.shown_figures]
    rows = []
    for row, text, members in zip(board.rows, cells, board.groups, strict=True):
        keys: list[str] = [_sort_key(row["rank"])]
        keys += [_sort_key(charts.finite_number(row.get(c))) for c in board.columns]
        keys += [_sort_key(row["n"])]
        keys += [_sort_key(row.get(f"{name}_mean")) for name in figures]
        keys += [_sort_key(value) for value in comparison_sort_values(board, row)]
        keys += [_sort_key(row.get("train_seconds_mean"))]
        keys += [_sort_key(row.get("params")), _sort_key(row.get("flops"))]
        links = [(_run_label(m), _report_link(m.folder, page), m.run_dir.name) for m in members]
        titles = ["", *(str(row.get(c, "")) for c in board.columns)]
        titles += [""] * (len(text) - len(titles))
        shown = [
            text[0],
            *(_short(row.get(c, "")) for c in board.columns),
            *text[1 + len(board.columns) :],
        ]
        cells = [
            (shown_text, key, title if title != shown_text else "")
            for shown_text, key, title in zip(shown, keys, titles, strict=True)
        ]
        rows.append({"cells": cells, "links": links})
    return {
        "header": header,
        "rows": rows,
        "metric": board.metric,
        "mode": board.mode,
        "notes": comparison_notes(board),
    }


def _seed(summary: Summary) -> str:
    return "?" if summary.seed is None else str(summary.seed)


def _run_label(run: RunInfo) -> str:
    """A run's link in its leaderboard row: its seed, and its fold in a K-fold sweep."""
    return f"seed {_seed(run.summary)}" + (f" fold {run.fold}" if run.fold else "")


def _report_link(run: RunFolder, page: Path) -> str:
    return _link(run.report_html, page) if run.report_html.is_file() else ""


def _failed(board: Leaderboard, page: Path) -> dict[str, Any]:
    return {
        "runs": [
            {
                "status": r.status,
                "overrides": " ".join(r.overrides) or "(defaults)",
                "folder": str(r.run_dir),
                "error": r.error,
                "link": _report_link(r.folder, page),
            }
            for r in board.failed
        ]
    }


def _differences(runs: Sequence[RunInfo], board: Leaderboard) -> dict[str, Any]:
    settings = [setting_values(o for o in r.settings if o.value_text is not None) for r in runs]
    if not settings:
        raise Absent("no runs")
    keys = sorted({k for s in settings for k in s})
    varying, common = [], []
    for key in keys:
        values = list(dict.fromkeys(s.get(key, "(not set)") for s in settings))
        if len(values) == 1:
            common.append((key, values[0]))
            continue
        numbers = [charts.finite_number(v) for v in values]
        if len(values) > 5 and all(n is not None for n in numbers):
            low, high = (
                min(n for n in numbers if n is not None),
                max(n for n in numbers if n is not None),
            )
            varying.append((key, [f"{len(values)} values from {low:.4g} to {high:.4g}"]))
        else:
            varying.append((key, [_short(v) for v in values]))
    return {"varying": varying, "common": common}


def _group_colors(board: Leaderboard) -> dict[Path, tuple[str, str]]:
    """Each run's colour and label: the colour of its leaderboard row (seeds share one)."""
    found = {}
    for index, (row, members) in enumerate(zip(board.rows, board.groups, strict=True)):
        color = charts.PALETTE[index % len(charts.PALETTE)]
        label = f"{row['rank']}. {_row_label(board, row)} (n={row['n']})"
        for member in members:
            found[member.run_dir] = (color, label)
    return found


def _validation_curves(board: Leaderboard) -> dict[str, Any]:
    colors = _group_colors(board)
    series: dict[str, list[tuple[str, list[float], list[float]]]] = {}
    run_colors: list[str] = []
    legend: dict[str, tuple[str, str, bool]] = {}
    for members in board.groups:
        for member in members:
            try:
                columns = _metrics(member.folder)
            except (Absent, OSError, ValueError):
                continue
            color, label = colors[member.run_dir]
            run_colors.append(color)
            legend[label] = (label, color, False)
            for key in dict.fromkeys((board.metric, "val_accuracy", "val_loss")):
                series.setdefault(key, []).append(
                    (member.run_dir.name, columns["epoch"], columns.get(key, []))
                )
    if not run_colors:
        raise Absent("no metrics.csv in any completed run")
    found = [
        charts.line_chart(
            key,
            "epoch",
            key,
            lines,
            colors=run_colors,
            legend=[],
            integer_x=True,
            width=520,
            height=300,
        )
        for key, lines in series.items()
        if any(len(ys) for _, _, ys in lines)
    ]
    return {"charts": found, "runs": len(run_colors), "legend": list(legend.values())}


def _objective_charts(board: Leaderboard) -> dict[str, Any]:
    columns = [c for c in board.columns if c != "config"]
    if not columns or len(board.rows) < 2:
        raise Absent("no parameter differs between the runs")
    colors = _group_colors(board)
    found = []
    for column in columns:
        points = []
        for members in board.groups:
            for member in members:
                given = (o for o in member.config_settings if o.value_text is not None)
                value = setting_values(given).get(column, "(not set)")
                objective = member.summary.best_value
                if objective is not None:
                    points.append((value, float(objective), colors[member.run_dir][0]))
        found.append(charts.scatter_chart(column, column, board.metric, points))
    return {"charts": found, "metric": board.metric, "mode": board.mode}


def _all_runs(runs: Sequence[RunInfo], page: Path) -> dict[str, Any]:
    rows = []
    for run in runs:
        best = run.summary.best or {}
        rows.append(
            {
                "name": run.run_dir.name,
                "status": run.status,
                "overrides": " ".join(run.overrides) or "(defaults)",
                "objective": (_text(best.get("value")), _sort_key(best.get("value"))),
                "link": _report_link(run.folder, page),
                "folder": str(run.run_dir),
            }
        )
    return {"rows": rows}


def runs_page(dirs: Sequence[Path], page: Path, comparison: Comparison | None = None) -> str:
    """The HTML of the report of a sweep or of any set of runs (links relative to ``page``);
    ``comparison`` adds its columns to the leaderboard (imgcls report --baseline/--target)."""
    runs = collect_runs(dirs)
    board = build_leaderboard(runs, comparison)
    macros = _module("runs.html.j2")
    parts = [
        _part("overview", "Runs", lambda: _sweep_overview(dirs, runs, board), macros),
        _part("leaderboard", "Leaderboard", lambda: _leaderboard(board, page), macros),
        _part("failed", "Failed or unfinished runs", lambda: _failed(board, page), macros),
        _part("differences", "Overrides", lambda: _differences(runs, board), macros),
        _part("curves", "Validation curves", lambda: _validation_curves(board), macros),
        _part(
            "objective",
            "Parameters against the objective",
            lambda: _objective_charts(board),
            macros,
        ),
        _part("runs", "Every run", lambda: _all_runs(runs, page), macros),
    ]
    name = " + ".join(d.resolve().name for d in dirs)
    subtitle = f"{len(board.rows)} configurations, {len(runs)} runs"
    return _page(f"imgcls report {name}", subtitle, parts)


# --- writing -----------------------------------------------------------------------------


def is_run(folder: RunFolder | Path) -> bool:
    """True for a run folder (it has a summary.json), False for a sweep or other folder."""
    return RunFolder.of(folder).is_run()


def output_path(dirs: Sequence[str | Path], out: str | Path | None) -> Path:
    """``--out``: a file ending in .html, or a folder to hold report.html; by default the
    first folder given (a run's or a sweep's report.html)."""
    if out is None:
        return SweepFolder(Path(dirs[0])).report_html
    target = Path(out)
    if target.suffix.lower() in (".html", ".htm"):
        return target
    return SweepFolder(target).report_html


def _write(path: Path, html: str) -> Path:
    ensure_dir(path.parent, "report folder")
    try:
        atomic_write(path, lambda f: f.write(html.encode("utf-8")), binary=True)
    except OSError as error:
        raise UserError(
            f"cannot write {path}: {error.strerror or error} (write it elsewhere with --out PATH)"
        ) from error
    return path


def write_run_report(run_dir: RunFolder | str | Path, out: str | Path | None = None) -> Path:
    """Write one run's report (``<run>/report.html`` unless ``out`` is given); a run folder
    that is gone (deleted or renamed meanwhile) is an error, never made again."""
    run = RunFolder.of(run_dir)
    if out is None and not run.path.is_dir():
        raise UserError(f"the run folder {run.path} is gone: no report written")
    return _write(Path(out) if out else run.report_html, run_page(run))


def write_runs_report(
    dirs: Sequence[str | Path],
    out: str | Path | None = None,
    run_reports: str = "all",
    comparison: Comparison | None = None,
) -> Path:
    """Write the report of a sweep or of several runs; each run's own report is written too
    (``run_reports``: ``all`` rewrites them, ``missing`` only adds absent ones, ``none``)
    so that the page can link to them. A run folder that cannot be written is linked to
    nothing, never an error."""
    folders = [Path(d) for d in dirs]
    page = output_path(folders, out)
    if run_reports != "none":
        for run in collect_runs(folders):
            if not run.folder.is_run():
                continue
            if run_reports == "missing" and run.folder.report_html.is_file():
                continue
            try:
                write_run_report(run.folder)
            except (OSError, UserError) as error:
                logger.warning(f"could not write {run.folder.report_html}: {one_line(error)}")
    return _write(page, runs_page(folders, page, comparison))


def write_report(
    dirs: Sequence[str | Path],
    out: str | Path | None = None,
    run_reports: str = "all",
    comparison: Comparison | None = None,
) -> Path:
    """``imgcls report --html``: a run's report for one run folder, else a sweep report
    (with ``comparison``'s columns in its leaderboard)."""
    if not dirs:
        raise UserError("imgcls report --html needs at least one run or sweep directory")
    for folder in dirs:
        if not Path(folder).is_dir():
            raise UserError(f"not a directory: {folder}; give run or sweep directories")
    if len(dirs) == 1 and is_run(Path(dirs[0])):
        return write_run_report(dirs[0], output_path(dirs, out))
    return write_runs_report(dirs, out, run_reports, comparison)
