"""The run record: every path of a run folder and of a sweep folder, the typed summary.json,
and the overrides a run was made with.

    <run>/.hydra/config.yaml overrides.yaml   the resolved config and the overrides
    <run>/.hydra/hydra.yaml                   Hydra's own settings (the sweeper, its space)
    <run>/train.log                           what the console showed, as plain text
    <run>/metrics.csv                         one row per epoch
    <run>/summary.json                        status, best epoch, test metrics, facts (Summary)
    <run>/checkpoints/last.pt best.pt         written atomically (temp file + rename)
    <run>/plots/curves.png confusion_matrix.png predictions.png
    <run>/plots/pr_curves.png                 a multi-label run's precision-recall curves
    <run>/plots/reliability.png               the reliability diagram (before/after scaling)
    <run>/test_metrics.json                   per-class test figures, for the report
    <run>/val_predictions.csv                 a k-fold run's held-out fold, predicted
    <run>/report.html                         the run's HTML report
    <run>/tensorboard/                        the tensorboard logger's events
    <run>/eval/<name>/metrics.json ...        what ``imgcls eval`` wrote
    <run>/export/<format>_<checkpoint>/       what ``imgcls export`` wrote

    <sweep>/multirun.yaml                     what Hydra's basic sweeper launched
    <sweep>/optimization_results.yaml         an Optuna search's best trial
    <sweep>/jobs.json                         every job: folder, status, error, overrides
    <sweep>/leaderboard.csv leaderboard.md    written when the sweep ends (and by imgcls report)
    <sweep>/oof_predictions.csv oof_metrics.json   a k-fold sweep's out-of-fold predictions
    <sweep>/report.html                       the sweep's HTML report
    <sweep>/<n>/                              one run folder per job

This is the one module that spells these names: everything else asks a :class:`RunFolder`
or a :class:`SweepFolder`, reads summary.json as a :class:`Summary` and a run's overrides
with :func:`read_overrides`. It imports no torch, and Hydra's override parser only when an
override is parsed: the CLI claims folders with it before Hydra starts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from imgcls.base.atomic import atomic_write, write_json
from imgcls.base.errors import UserError
from imgcls.base.processes import process_alive

SUMMARY_JSON = "summary.json"
JOBS_JSON = "jobs.json"
EVAL_METRICS_JSON = "metrics.json"  # in each eval/<name>/ folder


def _job_order(path: Path) -> tuple[int, str]:
    """Sweep jobs in the order Hydra numbered them (``2`` before ``10``), others last."""
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (10**9, path.name)


@dataclass(frozen=True)
class RunFolder:
    """Every path of one run folder; making one reads and writes nothing."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, value: RunFolder | str | Path) -> RunFolder:
        """``value`` as a RunFolder (callers may still pass a plain path)."""
        return value if isinstance(value, RunFolder) else cls(Path(value))

    # -- what Hydra and the job write first --------------------------------------------
    @property
    def hydra_dir(self) -> Path:
        """``.hydra/``: what Hydra (or train() without Hydra) records of the launch."""
        return self.path / ".hydra"

    @property
    def config_file(self) -> Path:
        """``.hydra/config.yaml``: the resolved config, which resume= trains with again."""
        return self.hydra_dir / "config.yaml"

    @property
    def overrides_file(self) -> Path:
        """``.hydra/overrides.yaml``: the overrides, read with :func:`read_overrides`."""
        return self.hydra_dir / "overrides.yaml"

    @property
    def hydra_file(self) -> Path:
        """``.hydra/hydra.yaml``: Hydra's settings (a sweep job's sweeper and space)."""
        return self.hydra_dir / "hydra.yaml"

    @property
    def train_log(self) -> Path:
        """``train.log``: what the console showed, as plain text."""
        return self.path / "train.log"

    @property
    def metrics_csv(self) -> Path:
        """``metrics.csv``: one row per epoch."""
        return self.path / "metrics.csv"

    @property
    def summary_json(self) -> Path:
        """``summary.json``: the run's :class:`Summary`."""
        return self.path / SUMMARY_JSON

    @property
    def tensorboard(self) -> Path:
        """``tensorboard/``: the tensorboard logger's default folder."""
        return self.path / "tensorboard"

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: last.pt, best.pt and any kept epochs."""
        return self.path / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt``: ``best``, ``last`` or ``epoch_003``."""
        return self.checkpoints / f"{name}.pt"

    @property
    def last_checkpoint(self) -> Path:
        """``checkpoints/last.pt``: what resume= continues from."""
        return self.checkpoint("last")

    @property
    def best_checkpoint(self) -> Path:
        """``checkpoints/best.pt``: what the test, eval and export use."""
        return self.checkpoint("best")

    def has_checkpoints(self) -> bool:
        """True when any ``checkpoints/*.pt`` exists: the run trained at least one epoch."""
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("*.pt"))

    # -- what the end of a run writes ----------------------------------------------------
    @property
    def plots(self) -> Path:
        """``plots/``: the figures drawn when the run ends."""
        return self.path / "plots"

    @property
    def curves_png(self) -> Path:
        """``plots/curves.png``: loss and accuracy per epoch."""
        return self.plots / "curves.png"

    @property
    def confusion_matrix_png(self) -> Path:
        """``plots/confusion_matrix.png``: on the test split."""
        return self.plots / "confusion_matrix.png"

    @property
    def predictions_png(self) -> Path:
        """``plots/predictions.png``: a grid of test images, shown in the report."""
        return self.plots / "predictions.png"

    @property
    def pr_curves_png(self) -> Path:
        """``plots/pr_curves.png``: a multi-label run's precision-recall curve per label."""
        return self.plots / "pr_curves.png"

    @property
    def cam_png(self) -> Path:
        """``plots/cam.png``: Grad-CAM of the most confident test mistakes and correct answers."""
        return self.plots / "cam.png"

    @property
    def reliability_png(self) -> Path:
        """``plots/reliability.png``: accuracy against confidence on the test split."""
        return self.plots / "reliability.png"

    @property
    def test_metrics_json(self) -> Path:
        """``test_metrics.json``: per-class test figures, shown in the report."""
        return self.path / "test_metrics.json"

    @property
    def val_predictions_csv(self) -> Path:
        """``val_predictions.csv``: a k-fold run's validation fold, with pool indices."""
        return self.path / "val_predictions.csv"

    @property
    def report_html(self) -> Path:
        """``report.html``: the run's self-contained report."""
        return self.path / "report.html"

    # -- what later commands add -------------------------------------------------------
    @property
    def eval_dir(self) -> Path:
        """``eval/``: one folder per ``imgcls eval`` of this run."""
        return self.path / "eval"

    def eval_folder(self, name: str) -> Path:
        """``eval/<name>/``: one evaluation's metrics, predictions and figures."""
        return self.eval_dir / name

    def eval_metrics_files(self) -> list[Path]:
        """Every ``eval/<name>/metrics.json``, sorted by name."""
        if not self.eval_dir.is_dir():
            return []
        return sorted(self.eval_dir.glob(f"*/{EVAL_METRICS_JSON}"))

    @property
    def export_dir(self) -> Path:
        """``export/``: one folder per ``imgcls export`` of this run."""
        return self.path / "export"

    def export_folder(self, fmt: str, checkpoint: str) -> Path:
        """``export/<format>_<checkpoint>/`` (``checkpoint``: best, last or a file name)."""
        return self.export_dir / f"{fmt}_{Path(checkpoint).stem}"

    # -- what a folder holds -----------------------------------------------------------
    @property
    def startup_paths(self) -> tuple[Path, ...]:
        """What a run writes before its summary.json: safe to delete when it stopped there."""
        return (
            self.hydra_dir,
            self.train_log,
            self.checkpoints,
            self.metrics_csv,
            self.tensorboard,
            self.plots,
        )

    @property
    def run_paths(self) -> tuple[Path, ...]:
        """What a run writes into its folder; any of them means the folder is taken."""
        return (
            self.hydra_dir,
            self.summary_json,
            self.metrics_csv,
            self.train_log,
            self.checkpoints,
        )

    def holds_run(self) -> bool:
        """True when the folder holds (part of) a run that imgcls wrote."""
        return any(p.exists() for p in self.run_paths)

    def is_run(self) -> bool:
        """True when the folder has a summary.json: a run that started training."""
        return self.summary_json.is_file()

    def read_summary(self) -> Summary:
        """The run's :class:`Summary` (a one-line UserError naming the file when unreadable)."""
        return Summary.read(self.summary_json)

    def read_overrides(self) -> list[RunOverride]:
        """The overrides the run was made with (:func:`read_overrides`)."""
        return read_overrides(self.overrides_file)


@dataclass(frozen=True)
class EvalFolder:
    """``<run>/eval/<name>/`` (or an ensemble's folder): what one ``imgcls eval`` writes."""

    path: Path

    @property
    def metrics_json(self) -> Path:
        """``metrics.json``: the evaluation's record (read back by the report)."""
        return self.path / EVAL_METRICS_JSON

    @property
    def predictions_csv(self) -> Path:
        """``predictions.csv``: each image's label, top-k classes and probabilities."""
        return self.path / "predictions.csv"

    @property
    def probabilities_npy(self) -> Path:
        """``probabilities.npy``: the full probability matrix."""
        return self.path / "probabilities.npy"

    @property
    def per_class_csv(self) -> Path:
        """``per_class.csv``: precision, recall, F1 and support of each class."""
        return self.path / "per_class.csv"

    @property
    def confusion_matrix_csv(self) -> Path:
        """``confusion_matrix.csv``: the matrix with class names on both axes."""
        return self.path / "confusion_matrix.csv"

    @property
    def classification_report_txt(self) -> Path:
        """``classification_report.txt``: scikit-learn's text report."""
        return self.path / "classification_report.txt"

    @property
    def confusion_matrix_png(self) -> Path:
        """``confusion_matrix.png``: the matrix as a figure."""
        return self.path / "confusion_matrix.png"

    @property
    def predictions_png(self) -> Path:
        """``predictions.png``: a grid of images with their predictions, mistakes first."""
        return self.path / "predictions.png"

    @property
    def cam_png(self) -> Path:
        """``cam.png`` (``cam=true``): Grad-CAM of the most confident mistakes and correct answers."""
        return self.path / "cam.png"

    @property
    def reliability_png(self) -> Path:
        """``reliability.png``: the reliability diagram of the evaluated probabilities."""
        return self.path / "reliability.png"


@dataclass(frozen=True)
class SweepFolder:
    """Every path of one sweep folder (or of a folder that holds a leaderboard or report)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def multirun_yaml(self) -> Path:
        """``multirun.yaml``: what Hydra's basic sweeper launched."""
        return self.path / "multirun.yaml"

    @property
    def optimization_results_yaml(self) -> Path:
        """``optimization_results.yaml``: an Optuna search's best trial."""
        return self.path / "optimization_results.yaml"

    @property
    def jobs_json(self) -> Path:
        """``jobs.json``: every job's folder, status, error and overrides."""
        return self.path / JOBS_JSON

    @property
    def leaderboard_csv(self) -> Path:
        """``leaderboard.csv``: one row per configuration, seeds merged."""
        return self.path / "leaderboard.csv"

    @property
    def leaderboard_md(self) -> Path:
        """``leaderboard.md``: the same table for people."""
        return self.path / "leaderboard.md"

    @property
    def oof_predictions_csv(self) -> Path:
        """``oof_predictions.csv``: a k-fold sweep's every pool image, predicted out of fold."""
        return self.path / "oof_predictions.csv"

    @property
    def oof_metrics_json(self) -> Path:
        """``oof_metrics.json``: the out-of-fold figures per configuration and seed."""
        return self.path / "oof_metrics.json"

    @property
    def report_html(self) -> Path:
        """``report.html``: the sweep's report, linking each run's."""
        return self.path / "report.html"

    @property
    def val_curves_png(self) -> Path:
        """``val_curves.png``: ``imgcls report --plot``'s validation curves."""
        return self.path / "val_curves.png"

    def job_folders(self) -> list[RunFolder]:
        """Every job folder (finished or not), in job order; hidden folders are not jobs."""
        children = sorted(self.path.iterdir(), key=_job_order)
        return [RunFolder(c) for c in children if c.is_dir() and not c.name.startswith(".")]

    def has_jobs(self) -> bool:
        """True when some sub-folder holds a job's config (``<n>/.hydra/config.yaml``)."""
        return any(job.config_file.is_file() for job in self.job_folders())


def find_runs(root: str | Path) -> list[RunFolder]:
    """Every run folder at or below ``root`` (each has a summary.json), sorted by path."""
    return [RunFolder(p.parent) for p in sorted(Path(root).rglob(SUMMARY_JSON))]


def find_jobs_files(root: str | Path) -> list[Path]:
    """The jobs.json of ``root`` and of every sweep folder below it, where they exist."""
    root = Path(root)
    found = [SweepFolder(root).jobs_json, *sorted(root.rglob(f"*/{JOBS_JSON}"))]
    return [p for p in found if p.is_file()]


# --- the overrides of a run ----------------------------------------------------------------


@dataclass(frozen=True)
class RunOverride:
    """One override of a run as Hydra's own parser reads it (quotes, lists, ``+``, ``~``).

    ``key`` is the config key or group without its ``+``/``++``/``~`` (``optimizer.lr``,
    ``model``, ``hydra/launcher``); ``value`` is the parsed value, ``value_text`` the value
    as written (``'a b'`` keeps its quotes; None for ``~key``) and ``text`` the whole
    override as written, which is what a command line or a table shows.
    """

    text: str
    key: str
    kind: str  # change, add, force_add or del (Hydra's OverrideType, lower case)
    value: Any
    value_text: str | None
    package: str | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def is_hydra(self) -> bool:
        """A Hydra setting (``hydra.run.dir=``, ``hydra/launcher=``): how a job was launched."""
        return self.key == "hydra" or self.key.startswith(("hydra.", "hydra/"))

    @property
    def is_delete(self) -> bool:
        """``~key``: the override removes a key or group."""
        return self.kind == "del"


_parser: Any = None


def override_parser() -> Any:
    """Hydra's override parser, made once (making one costs milliseconds): the grammar of
    ``train`` that run records and the other commands' arguments are read with."""
    global _parser
    if _parser is None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        _parser = OverridesParser.create()
    return _parser


@functools.lru_cache(maxsize=4096)
def parse_override(text: str) -> RunOverride:
    """One override through Hydra's parser; a malformed one is a UserError quoting it.

    Cached: a sweep's report reads the same few overrides of every job several times, and
    a RunOverride is immutable.
    """
    from hydra.errors import HydraException

    try:
        parsed = override_parser().parse_overrides([text])[0]
    except HydraException as error:
        raise UserError(f"cannot parse the override {text!r}") from error
    key_element = parsed.get_key_element()  # with its +, ++ or ~ and @package
    rest = text.strip()[len(key_element) :]
    try:
        value = parsed.value()
    except HydraException:  # e.g. a sweep (a,b) in a file written by hand
        value = rest[1:]
    return RunOverride(
        text=text,
        key=parsed.key_or_group,
        kind=parsed.type.name.lower(),
        value=value,
        value_text=rest[1:] if rest.startswith("=") else None,
        package=parsed.package,
    )


def parse_overrides(texts: Iterable[Any]) -> list[RunOverride]:
    """Parse recorded overrides. One that Hydra's grammar refuses (a file edited by hand, a
    value with ``<`` in it) is still listed as written: its key is what stands before the
    first ``=`` and its kind is ``unparsed``, so that a report shows the run as it was."""
    parsed = []
    for item in texts:
        text = str(item)
        try:
            parsed.append(parse_override(text))
        except UserError:
            parsed.append(_unparsed(text))
    return parsed


def _unparsed(text: str) -> RunOverride:
    """An override Hydra cannot parse, kept as text."""
    key, equals, value = text.partition("=")
    value_text = value if equals else None
    return RunOverride(text, key.strip().lstrip("+~"), "unparsed", value_text, value_text)


def read_overrides(path: Path) -> list[RunOverride]:
    """A run's ``.hydra/overrides.yaml``, parsed: the one reader of that file.

    A missing file is no overrides (a run made by :func:`imgcls.app.job.train` without
    any); a file that is not a YAML list is a one-line UserError naming it, which each
    caller turns into what it shows (the leaderboard lists the run without settings).
    """
    if not path.is_file():
        return []
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())[:200]
        raise UserError(f"{path} is not a readable overrides file ({detail})") from error
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UserError(f"{path} is not a list of overrides (texts such as 'seed=1')")
    return parse_overrides(values)


def write_overrides(path: Path, overrides: Sequence[str]) -> None:
    """``.hydra/overrides.yaml`` as Hydra writes it: a YAML list of the override strings."""
    atomic_write(path, lambda f: yaml.safe_dump([str(o) for o in overrides], f))


# --- summary.json --------------------------------------------------------------------------

# Facts written as the run starts: present (possibly null) in every summary of a run that
# started, so that a reader can tell "unknown" from "never recorded".
_START_FACTS = {
    "run_dir",
    "model",
    "dataset",
    "seed",
    "hyperparameters",
    "config_hash",
    "started_at",
    "device",
    "precision",
    "params",
    "flops",
    "classes",
    "data",
    "method",
    "finetune",
    "init_from_data_seconds",
    "versions",
    "git_commit",
    "pid",
    "process",
    "timings",
}
_DICTS = {"hyperparameters", "data", "versions", "timings", "resumed_from", "best", "test"}
_DICTS |= {"throughput", "process", "thresholds", "calibration"}
_LISTS = {"classes", "resumed"}
_INTS = {"seed", "params", "flops", "pid", "epochs_completed", "steps"}
_NUMBERS = {"init_from_data_seconds", "train_seconds", "wall_seconds"}
_TEXTS = {"status", "run_dir", "model", "dataset", "config_hash", "started_at", "device"}
_TEXTS |= {"precision", "method", "git_commit", "finished_at", "error"}


def _checked(name: str, value: Any) -> Any:
    """``value`` if it has the shape field ``name`` needs, else None (a damaged section is
    dropped, not trusted); scalars of text fields are read as text."""
    if value is None:
        return None
    if name in _DICTS:
        return value if isinstance(value, dict) else None
    if name in _LISTS:
        return value if isinstance(value, list) else None
    if name in _INTS:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if name in _NUMBERS:
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if name == "stopped_early":
        return value if isinstance(value, bool) else None
    if name in _TEXTS:
        return None if isinstance(value, (dict, list)) else str(value)
    return value


@dataclass
class Summary:
    """``summary.json``: how a run ended, its results and the facts needed to compare runs.

    The fields are the file's keys, in the order they are written; a field left None is not
    written (except the start facts, written even when unknown), and ``extra`` holds what
    a training method adds (e.g. a target domain's metrics) and keys this version does not
    know, so that rewriting an older or newer file keeps them. :meth:`read` is the one
    tolerant reader: missing keys are None, sections of the wrong shape are dropped.
    """

    status: str = "unknown"
    run_dir: str | None = None
    model: str | None = None
    dataset: str | None = None
    seed: int | None = None
    hyperparameters: dict[str, Any] | None = None
    config_hash: str | None = None
    started_at: str | None = None
    device: str | None = None
    precision: str | None = None
    params: int | None = None
    flops: int | None = None
    classes: list[str] | None = None
    data: dict[str, Any] | None = None
    method: str | None = None
    finetune: Any = None
    init_from_data_seconds: float | None = None
    versions: dict[str, Any] | None = None
    git_commit: str | None = None
    pid: int | None = None
    process: dict[str, Any] | None = None  # the writer's identity: processes.process_identity
    timings: dict[str, float | None] | None = None
    resumed: list[str] | None = None
    resumed_from: dict[str, int] | None = None
    epochs_completed: int | None = None
    steps: int | None = None
    best: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    thresholds: dict[str, float] | None = None  # a multi-label run's, tuned on validation
    # calibrate=temperature: method, temperature, fitted_on, split, bins, before, after
    calibration: dict[str, Any] | None = None
    train_seconds: float | None = None
    stopped_early: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, float | None] | None = None
    finished_at: str | None = None
    wall_seconds: float | None = None
    error: str | None = None

    @property
    def best_value(self) -> float | None:
        """The best value of the monitored metric, when it is a number."""
        value = (self.best or {}).get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object that :meth:`write` writes."""
        started = self.started_at is not None
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "extra":
                data.update(value)
            elif value is not None or item.name == "status":
                data[item.name] = value
            elif started and item.name in _START_FACTS:
                data[item.name] = None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """A summary from a decoded summary.json, tolerant of older and damaged ones."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: _checked(k, data.get(k)) for k in known}
        if values["status"] is None:
            values["status"] = "unknown"
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra)

    @classmethod
    def read(cls, path: Path) -> Summary:
        """Read ``path``; a missing, unreadable or non-JSON file, or one that holds no JSON
        object, is a one-line UserError naming it (a reader lists that run as unreadable)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise UserError(f"{path} is unreadable ({error.strerror or error})") from error
        except ValueError as error:  # bad JSON, or bytes that are not UTF-8
            detail = " ".join(str(error).split())
            raise UserError(f"{path} is not valid JSON ({detail})") from error
        if not isinstance(data, dict):
            kind = "null" if data is None else f"a JSON {type(data).__name__}"
            raise UserError(f"{path} is not a run summary: it holds {kind}, not an object")
        return settled(cls.from_dict(data))

    def write(self, path: Path) -> None:
        """Write atomically: a reader sees the previous summary or this one, never half."""
        write_json(path, self.to_dict())

    @property
    def alive(self) -> bool:
        """True when the summary says running and the process that wrote it still runs
        (its identity checked, not only its pid: see :func:`process_alive`)."""
        return self.status == "running" and process_alive(self.pid, self.process)


# What a summary that says "running" reads as once its process is gone (killed, the machine
# rebooted, its pid reused): it ended without recording how, and resume continues it.
GONE_STATUS = "interrupted"


def settled(summary: Summary) -> Summary:
    """``summary`` as a reader must see it: a run whose process is gone is never "running".

    Every reader (resume, sweeps, leaderboards, reports) gets summaries through
    :meth:`Summary.read`, which applies this, so all of them agree on what is running.
    """
    if summary.status == "running" and not summary.alive:
        summary.status = GONE_STATUS
        summary.error = summary.error or "the process that ran it ended without recording how"
    return summary
