"""Hydra glue for ``imgcls train``: pre-validation, the Hydra app, and job bookkeeping.

Every override combination is composed and validated *before* Hydra runs anything, so a
typo fails with one line and no output folder. During a multirun a failing job is recorded
as failed and the sweep goes on.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from imgcls.config import compose, config_dir, register_configs, reset_unique_dirs, validate
from imgcls.errors import TrainingInterrupted, UserError
from imgcls.folders import claim_run_folder, ensure_dir
from imgcls.runs import remove_unstarted, write_json
from imgcls.sweeps import (
    JobResult,
    config_hash,
    find_job,
    last_sweep_dir,
    read_job,
    share_cores,
    sweep_jobs,
)

logger = logging.getLogger("imgcls")

# Hydra flags that take a value, and flags after which no job runs.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
               "--config-dir", "-cd", "--experimental-rerun"}  # fmt: skip
NO_JOB_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
                "--version"}  # fmt: skip
HYDRA_KEYS = ("hydra.", "hydra/", "+hydra", "~hydra", "++hydra")


@dataclass
class JobRecord:
    run_dir: str
    status: str
    error: str | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class Claim:
    """The folder a single run was given before Hydra started, and how it came to be."""

    path: Path
    created: bool = True  # False: an empty folder the user named, kept if the run fails
    generated: bool = True  # True: the default <root>/<date>/<time>_... name


@dataclass
class LaunchState:
    jobs: list[JobRecord] = field(default_factory=list)
    error: BaseException | None = None
    claim: Claim | None = None


def split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's flags (with their values) from the overrides."""
    flags: list[str] = []
    overrides: list[str] = []
    expect_value = False
    for arg in args:
        if expect_value:
            flags.append(arg)
            expect_value = False
        elif arg.startswith("-"):
            flags.append(arg)
            expect_value = arg in VALUE_FLAGS
        else:
            overrides.append(arg)
    return flags, overrides


def override_variants(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """Override lists that together use every value of every sweep at least once."""
    config_overrides = [o for o in overrides if not o.startswith(HYDRA_KEYS)]
    if not multirun:
        return [config_overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(config_overrides)
    except Exception as error:
        raise UserError(f"cannot parse the overrides: {' '.join(str(error).split())}") from error
    choices: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in _sweep_values(override)])
        else:
            choices.append([override.input_line])
    base = [values[0] for values in choices]
    variants = [base]
    for i, values in enumerate(choices):
        for value in values[1:]:
            variants.append([*base[:i], value, *base[i + 1 :]])
    return variants


def _sweep_values(override) -> list[str]:
    """The values a sweep can take; an interval sweep (Optuna's search space) by its bounds."""
    from hydra.core.override_parser.types import IntervalSweep

    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        bounds = [sweep.start, sweep.end]
        if "int" in sweep.tags or (isinstance(sweep.start, int) and isinstance(sweep.end, int)):
            bounds = [int(b) for b in bounds]
        return [str(b) for b in bounds]
    return list(override.sweep_string_iterator())


def prevalidate(overrides: Sequence[str], multirun: bool) -> None:
    for variant in override_variants(overrides, multirun):
        validate(compose(variant))


def run_train(args: Sequence[str]) -> int:
    """``imgcls train``: validate, then hand over to Hydra (run or multirun)."""
    flags, overrides = split_arguments(args)
    multirun = "-m" in flags or "--multirun" in flags
    register_configs()
    reset_unique_dirs()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's storage is chatty
    runs_job = not (NO_JOB_FLAGS & set(flags)) and not any(f in ("--cfg", "-c") for f in flags)
    if runs_job and any(o.startswith("resume=") for o in overrides):
        from imgcls.train.resume_cli import resume_target, run_resumed

        target = resume_target(overrides, multirun)
        if target is not None:  # continue in that folder; Hydra would make a new one
            return run_resumed(target)
    if runs_job:
        prevalidate(overrides, multirun)

    import hydra

    state = LaunchState()
    distributed_args = distributed_overrides(overrides, multirun) if runs_job else []
    folder_args: list[str] = []
    if runs_job and not distributed_args:
        folder_args = claim_output_folder(overrides, multirun, state)

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg) -> float | None:
        return run_job(cfg, multirun, state)

    args = [*args, *folder_args, *distributed_args]
    saved_argv = sys.argv
    sys.argv = ["imgcls train", *args]
    try:
        app()
    finally:
        sys.argv = saved_argv
        if distributed_args:
            from imgcls import distributed

            distributed.shutdown()
    if state.error is not None:
        raise state.error
    sweep_dir = last_sweep_dir() if multirun else None
    if sweep_dir is not None and sweep_dir.is_dir():
        jobs = sweep_jobs(sweep_dir)
        return 0 if jobs and all(j.status == "completed" for j in jobs) else 1
    return 0


def resume_sweep_overrides(overrides: Sequence[str], multirun: bool) -> list[str]:
    """``sweep.resume=<dir>`` re-runs a sweep into its old folder: ``hydra.sweep.dir=<dir>``."""
    resume = [o.split("=", 1)[1] for o in overrides if o.startswith("sweep.resume=")]
    if not resume or resume[-1] in ("null", "None", ""):
        return []
    folder = Path(resume[-1])
    if not multirun:
        raise UserError(f"sweep.resume={folder} resumes a sweep: add -m (--multirun)")
    if not folder.is_dir() or not (
        (folder / "multirun.yaml").is_file() or any(folder.glob("*/.hydra/config.yaml"))
    ):
        raise UserError(
            f"sweep.resume={folder} is not a sweep folder (no multirun.yaml and no job folders)"
        )
    return [f"hydra.sweep.dir={folder.resolve()}"]


def claim_output_folder(overrides: Sequence[str], multirun: bool, state: LaunchState) -> list[str]:
    """Take the run (or sweep) folder before Hydra starts, and hand it to Hydra by name.

    Hydra would create it itself and write ``.hydra/`` into it before any imgcls code runs:
    into a finished run's folder, or into a path that cannot be a folder, with a traceback.
    Here a named run folder that holds a run is refused (only ``resume=`` continues a run in
    its own folder), and a folder that cannot be created is one line naming it.
    """
    resumed = resume_sweep_overrides(overrides, multirun)  # refused without -m
    if multirun:
        if resumed:
            return resumed
        sweep_dir = ensure_dir(resolve_output_dir(overrides, "hydra.sweep.dir"), "sweep directory")
        return [f"hydra.sweep.dir={_quoted(sweep_dir.resolve())}"]
    state.claim = claim_single_run(overrides)
    return [f"hydra.run.dir={_quoted(state.claim.path.resolve())}"]


def claim_single_run(overrides: Sequence[str]) -> Claim:
    """A fresh generated run folder, or the one ``hydra.run.dir=`` names (checked)."""
    named = any(o.lstrip("+~").startswith("hydra.run.dir=") for o in overrides)
    path = Path(resolve_output_dir(overrides, "hydra.run.dir"))
    if not named:  # the imgcls_unique_dir resolver has just created it, fresh
        return Claim(path)
    folder, created = claim_run_folder(path)
    return Claim(folder, created=created, generated=False)


def resolve_output_dir(overrides: Sequence[str], key: str) -> str:
    """The folder ``hydra.run.dir`` or ``hydra.sweep.dir`` names for these overrides.

    Resolving the default claims a fresh folder (the ``imgcls_unique_dir`` resolver); the
    result is passed to Hydra literally, so Hydra never resolves it a second time.
    """
    from hydra.core.hydra_config import HydraConfig

    config_overrides = override_variants(overrides, multirun=key == "hydra.sweep.dir")[0]
    hydra_overrides = [o for o in overrides if o.startswith(HYDRA_KEYS)]
    cfg = compose([*config_overrides, *hydra_overrides], return_hydra=True)
    HydraConfig.instance().set_config(cfg)
    try:
        return str(OmegaConf.select(cfg, key))
    except Exception as error:  # a resolver failed: report its own UserError if it was one
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise UserError(f"cannot resolve {key}: {' '.join(str(error).split())}") from error


def _quoted(path: Path) -> str:
    """A path as a Hydra override value (quoted when it holds characters Hydra parses)."""
    text = str(path)
    if re.fullmatch(r"[\w./:+@-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def distributed_overrides(overrides: Sequence[str], multirun: bool) -> list[str]:
    """Under torchrun with ``trainer.strategy=ddp``: join the group, share rank 0's run folder.

    Every rank must write into one run directory (rank 0 alone writes); Hydra would give each
    process its own, so rank 0 claims the folder and broadcasts it before Hydra starts.
    """
    from imgcls import distributed

    if not distributed.launched_by_torchrun():
        if "trainer.strategy=ddp" in overrides:
            raise UserError(
                "trainer.strategy=ddp needs several processes: launch with "
                "torchrun --nproc_per_node=N -m imgcls train trainer.strategy=ddp ..."
            )
        return []
    cfg = compose([o for o in overrides if not o.startswith(HYDRA_KEYS)])
    if str(cfg.trainer.strategy) != "ddp":
        return []
    if multirun:
        raise UserError("trainer.strategy=ddp runs one training job; it cannot be combined with -m")
    import torch

    wants_cuda = str(cfg.trainer.device) != "cpu" and torch.cuda.is_available()
    ctx = distributed.initialize("cuda" if wants_cuda else "cpu")
    run_dir = None
    if ctx.is_main:
        run_dir = str(claim_single_run(overrides).path.resolve())
    run_dir = distributed.broadcast(run_dir)
    extra = [f"hydra.run.dir={_quoted(Path(run_dir))}"]
    if not ctx.is_main:
        extra.append("hydra.output_subdir=null")  # rank 0 alone writes .hydra/
    return extra


def run_job(cfg, multirun: bool, state: LaunchState) -> float | None:
    """One Hydra job: train into Hydra's output folder and record how it ended.

    Returns the best value of the monitored metric (the objective of Hydra's sweepers such
    as Optuna), or None when the job failed, which a sweeper records as a failed trial.
    """
    from hydra.core.hydra_config import HydraConfig

    from imgcls.train.job import train

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    if multirun:
        share_cores(hydra_cfg)
        finished = finished_job(cfg, run_dir)
        if finished is not None:
            return finished.objective
    try:
        result = train(cfg, run_dir, list(hydra_cfg.overrides.task))
        state.jobs.append(JobRecord(str(run_dir), "completed", overrides=overrides))
        return (result.summary.get("best") or {}).get("value")
    except (UserError, TrainingInterrupted) as error:
        state.jobs.append(JobRecord(str(run_dir), _status(error), str(error), overrides))
        if not multirun or isinstance(error, TrainingInterrupted):
            remove_unstarted_run(run_dir, state)
            state.error = error
        else:
            record_failure(run_dir, cfg, error)
            logger.error(f"job failed: {error}")
    except Exception as error:
        if not multirun:  # an unexpected error: the CLI reports it; no half-made folder stays
            remove_unstarted_run(run_dir, state)
            state.error = error
            return None
        logger.exception(f"job failed: {error}")
        record_failure(run_dir, cfg, error)
        state.jobs.append(
            JobRecord(str(run_dir), "failed", f"{type(error).__name__}: {error}", overrides)
        )
    return None


def finished_job(cfg, run_dir: Path) -> JobResult | None:
    """The earlier job that ran this same config: in this job's own folder (a job that
    submitit requeued after a preemption) or, with ``sweep.resume``, anywhere in the sweep.

    A completed one is skipped; an unfinished one with a last.pt is continued in its own
    folder through the exact resume, and its result is returned.
    """
    own = read_job(run_dir)
    if own is not None and own.config_hash == config_hash(cfg):
        job = own  # a requeued job (SLURM preemption) finds its own folder: continue it
    elif OmegaConf.select(cfg, "sweep.resume"):
        job = find_job(run_dir.parent, config_hash(cfg))
    else:
        return None
    if job is None:
        return None
    if job.status != "completed":
        if not (job.run_dir / "checkpoints" / "last.pt").is_file():
            return None  # nothing to continue from: run it again
        from imgcls.train.resume import resume_run

        logger.info(f"resuming the unfinished job {job.run_dir.name}")
        if job.run_dir.resolve() != run_dir.resolve():
            remove_unstarted_run(run_dir)
        resume_run(job.run_dir)
        return read_job(job.run_dir)
    logger.info(f"skipping a finished job: {job.run_dir.name} already ran this config")
    if job.run_dir.resolve() != run_dir.resolve():
        remove_unstarted_run(run_dir)
    return job


def record_failure(run_dir: Path, cfg, error: BaseException) -> None:
    """A failed sweep job keeps a summary.json that says why, so the sweep's reports list it."""
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        return
    write_json(
        summary_path,
        {
            "status": "failed",
            "error": str(error) or type(error).__name__,
            "run_dir": str(run_dir),
            "config_hash": config_hash(cfg),
        },
    )


def _status(error: BaseException) -> str:
    return "interrupted" if isinstance(error, TrainingInterrupted) else "failed"


def remove_unstarted_run(run_dir: Path, state: LaunchState | None = None) -> None:
    """Delete what Hydra and imgcls wrote for a job that failed before training started.

    A folder the user named and that existed before the run keeps existing (empty).
    """
    claim = state.claim if state is not None else None
    if claim is not None and claim.path.resolve() == run_dir.resolve():
        remove_unstarted(run_dir, keep_folder=not claim.created, empty_parent=claim.generated)
    else:
        remove_unstarted(run_dir, empty_parent=False)
