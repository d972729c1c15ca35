"""Finding and continuing runs: ``resume=<run dir>``, ``resume=auto`` and requeued jobs.

``imgcls train resume=<run dir>`` continues in that folder with the run's own config;
``resume=auto`` picks the newest unfinished run under ``output_root`` whose config equals
the composed one. The engine restores its state (:meth:`Engine.load_state_dict`) and replays
an interrupted epoch (:mod:`imgcls.train.replay`); this module decides *which* run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, OmegaConf

from imgcls.app.job import RunResult, train
from imgcls.app.validation import validate
from imgcls.base.checkpoint import check_resumable, load_checkpoint
from imgcls.base.errors import UserError, one_line
from imgcls.base.record import RunFolder, find_runs, parse_overrides
from imgcls.base.runs import check_metrics
from imgcls.config.compose import compose, register_configs
from imgcls.config.files import HYDRA_KEYS
from imgcls.config.schemas import TrainConfig
from imgcls.config.values import comparable_config

logger = logging.getLogger("imgcls")

UNFINISHED = ("interrupted",)  # "running" is read as interrupted once its process is gone
STATUSES = ("running", "interrupted", "failed", "completed")
# Keys every run's config.yaml has held: a file without one of them was cut short.
CORE_KEYS = ("model", "dataset", "optimizer", "scheduler", "trainer", "seed")


def saved_config(run_dir: RunFolder | Path) -> DictConfig:
    """The run's config from ``.hydra/config.yaml``, checked against the schema; an empty,
    unreadable or damaged file is a one-line UserError naming it."""
    register_configs()
    config_file = RunFolder.of(run_dir).config_file
    text = config_text(config_file)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(text))
    except Exception as error:
        raise UserError(
            f"{config_file} is not a valid imgcls config ({one_line(error, limit=200)})"
        ) from error
    cfg.resume = None
    restore_hydra_settings(RunFolder.of(run_dir))
    return cfg


def restore_hydra_settings(run: RunFolder) -> None:
    """Make the run's own Hydra settings current, so that ``${hydra:runtime.cwd}`` in its
    saved config (Hydra saves it unresolved) resolves as it did when the run started.

    A missing or damaged ``hydra.yaml`` is left alone: only such interpolations need it, and
    they then fail with their own one line.
    """
    setup_globals()  # registers Hydra's own resolvers (``hydra:``), as a Hydra job has them
    try:
        saved = OmegaConf.load(run.hydra_file).hydra
        settings = OmegaConf.structured(HydraConf)  # the type Hydra's own node has
        OmegaConf.set_struct(settings, False)  # launcher and sweeper keys of any plugin
        settings = OmegaConf.merge(settings, saved)
        HydraConfig.instance().set_config(OmegaConf.create({"hydra": settings}))
    except Exception:  # noqa: BLE001 - optional: the config may not need it at all
        return


def config_text(config_file: Path) -> str:
    """The text of a run's config.yaml, once it is known to hold a YAML mapping.

    A full disk leaves a 0-byte file, a crash or a hand edit a damaged one: each is one
    line naming the file, before anything of the run is touched.
    """
    try:
        text = config_file.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"{config_file} is unreadable ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise UserError(f"{config_file} is damaged: it is not UTF-8 text") from error
    if not text.strip():
        raise UserError(
            f"{config_file} is empty: the run's config was never written whole (a full "
            "disk?), so the run cannot be continued; start it again"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = one_line(error, limit=160)
        raise UserError(f"{config_file} is damaged: not valid YAML ({detail})") from error
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise UserError(f"{config_file} is damaged: it holds a {kind}, not a mapping of keys")
    missing = [key for key in CORE_KEYS if key not in data]
    if missing or not text.endswith("\n"):
        lacking = f" (it lacks {', '.join(missing)})" if missing else ""
        raise UserError(f"{config_file} is damaged: cut short{lacking}; the run cannot continue")
    return text


def check_run_dir(value: str | Path) -> Path:
    """A run directory that can be resumed, or a one-line UserError saying why not.

    Every file that resuming reads is checked here, before anything is written: the
    summary, the config, the overrides and the header of metrics.csv (damaged rows are
    dropped when the run goes on); the checkpoint is checked as it is loaded.
    """
    run = RunFolder(Path(value))
    if not run.path.is_dir():
        raise UserError(f"resume={value}: no such run directory")
    if not run.config_file.is_file() or not run.summary_json.is_file():
        raise UserError(
            f"resume={value} is not an imgcls run directory (it needs .hydra/config.yaml and "
            "summary.json, as written by imgcls train)"
        )
    summary = run.read_summary()
    if summary.status not in STATUSES:
        raise UserError(
            f"{run.summary_json} is damaged: its status is missing or not one of "
            f"{', '.join(STATUSES)}"
        )
    if summary.status == "completed":
        raise UserError(f"resume={value}: that run has already completed")
    if summary.status == "running":  # read settled: its process is alive (identity checked)
        raise UserError(f"resume={value}: that run is still running (process {summary.pid})")
    if not run.last_checkpoint.is_file():
        raise UserError(f"resume={value}: the run has no checkpoints/last.pt to continue from")
    saved_config(run)
    run.read_overrides()
    check_metrics(run.metrics_csv)
    return run.path


def find_unfinished(cfg: DictConfig) -> Path | None:
    """The newest unfinished run under ``cfg.output_root`` with the same config, if any.

    Unfinished: ``summary.json`` says interrupted (a run whose process is gone reads so:
    :func:`imgcls.base.record.settled`), and ``checkpoints/last.pt`` exists.
    """
    root = Path(str(cfg.output_root))
    if not root.is_dir():
        return None
    wanted = comparable_config(cfg)
    found: list[tuple[float, Path]] = []
    for run in find_runs(root):
        if not run.last_checkpoint.is_file() or not run.config_file.is_file():
            continue
        try:
            summary = run.read_summary()
            if summary.status not in UNFINISHED:
                continue
            if comparable_config(OmegaConf.load(run.config_file)) != wanted:
                continue
        except Exception:  # an unreadable neighbour is not ours to judge
            continue
        found.append((run.last_checkpoint.stat().st_mtime, run.path))
    return max(found)[1] if found else None


def resolve(cfg: DictConfig) -> Path | None:
    """The run directory that ``cfg.resume`` names (checked), or None: start a new run."""
    value = str(cfg.resume)
    if value != "auto":
        return check_run_dir(value)
    found = find_unfinished(cfg)
    if found is None:
        logger.info(f"resume=auto: no unfinished run with this config under {cfg.output_root}")
        return None
    logger.info(f"resume=auto: continuing {found}")
    return check_run_dir(found)


def target_from_overrides(overrides: Sequence[str], multirun: bool) -> Path | None:
    """The run directory ``resume=`` on the command line names (checked), or None when
    ``resume=auto`` finds no unfinished run with the config the other overrides compose."""
    if multirun:
        raise UserError("resume= continues one run; it cannot be combined with -m (--multirun)")
    value = next(str(o.value) for o in parse_overrides(overrides) if o.key == "resume")
    if value in ("", "null", "None"):
        return None
    if value != "auto":
        others = [o for o in overrides if not o.startswith(("resume=", *HYDRA_KEYS))]
        if others:
            raise UserError(
                f"resume={value} continues that run with its own config; remove the other "
                f"overrides ({' '.join(others)}) or use resume=auto with them"
            )
        return check_run_dir(value)
    cfg = compose(list(overrides))
    validate(cfg)
    found = find_unfinished(cfg)
    return check_run_dir(found) if found is not None else None


def continue_run(run_dir: str | Path) -> RunResult:
    """Continue the run in ``run_dir`` from its last.pt, in the same folder, with its config."""
    run = RunFolder(check_run_dir(run_dir))
    cfg = saved_config(run)
    state = load_checkpoint(run.last_checkpoint)
    check_resumable(state, run.last_checkpoint)
    overrides = [o.text for o in run.read_overrides()]  # all of them, as they were given
    return train(cfg, run.path, overrides, resume_state=state)


def train_or_resume(
    cfg: DictConfig, run_dir: str | Path | None = None, overrides: Sequence[str] = ()
) -> RunResult:
    """Continue the run ``cfg.resume`` names (or ``auto`` finds), else train ``cfg`` afresh."""
    target = resolve(cfg) if cfg.get("resume") else None
    if target is not None:
        return continue_run(target)
    return train(cfg, run_dir, overrides)
