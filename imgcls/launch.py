"""Hydra glue for ``imgcls train``: pre-validation, the Hydra app, and job bookkeeping.

Every override combination is composed and validated *before* Hydra runs anything, so a
typo fails with one line and no output folder. During a multirun a failing job is recorded
as failed and the sweep goes on.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgcls.config import compose, config_dir, register_configs, reset_unique_dirs, validate
from imgcls.errors import TrainingInterrupted, UserError

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
class LaunchState:
    jobs: list[JobRecord] = field(default_factory=list)
    error: BaseException | None = None
    sweep_dir: str | None = None


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
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    base = [values[0] for values in choices]
    variants = [base]
    for i, values in enumerate(choices):
        for value in values[1:]:
            variants.append([*base[:i], value, *base[i + 1 :]])
    return variants


def prevalidate(overrides: Sequence[str], multirun: bool) -> None:
    for variant in override_variants(overrides, multirun):
        validate(compose(variant))


def run_train(args: Sequence[str]) -> int:
    """``imgcls train``: validate, then hand over to Hydra (run or multirun)."""
    flags, overrides = split_arguments(args)
    multirun = "-m" in flags or "--multirun" in flags
    register_configs()
    reset_unique_dirs()
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

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg) -> None:
        run_job(cfg, multirun, state)

    saved_argv = sys.argv
    sys.argv = ["imgcls train", *args]
    try:
        app()
    finally:
        sys.argv = saved_argv
    if state.error is not None:
        raise state.error
    if multirun and state.jobs and state.sweep_dir:
        from imgcls.evaluate.leaderboard import sweep_leaderboard

        sweep_leaderboard(state.sweep_dir, state.jobs)  # leaderboard.csv/.md and jobs.json
    if multirun and state.jobs:
        failed = [j for j in state.jobs if j.status != "completed"]
        logger.info(
            f"sweep finished: {len(state.jobs) - len(failed)} of {len(state.jobs)} jobs completed"
            + (f" in {state.sweep_dir}" if state.sweep_dir else "")
        )
        for job in failed:
            logger.info(f"  {job.status}: {job.run_dir}: {job.error}")
        return 1 if failed else 0
    return 0


def run_job(cfg, multirun: bool, state: LaunchState) -> None:
    """One Hydra job: train into Hydra's output folder and record how it ended."""
    from hydra.core.hydra_config import HydraConfig

    from imgcls.train.job import train

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    if multirun:
        state.sweep_dir = str(Path(hydra_cfg.sweep.dir).resolve())
    try:
        train(cfg, run_dir, list(hydra_cfg.overrides.task))
        state.jobs.append(JobRecord(str(run_dir), "completed", overrides=overrides))
    except (UserError, TrainingInterrupted) as error:
        if not (run_dir / "summary.json").exists():
            remove_unstarted_run(run_dir)
        state.jobs.append(JobRecord(str(run_dir), _status(error), str(error), overrides))
        if not multirun or isinstance(error, TrainingInterrupted):
            state.error = error
        else:
            logger.error(f"job failed: {error}")
    except Exception as error:
        if not multirun:
            raise
        logger.exception(f"job failed: {error}")
        state.jobs.append(
            JobRecord(str(run_dir), "failed", f"{type(error).__name__}: {error}", overrides)
        )


def _status(error: BaseException) -> str:
    return "interrupted" if isinstance(error, TrainingInterrupted) else "failed"


def remove_unstarted_run(run_dir: Path) -> None:
    """Delete the folder Hydra made for a job that failed before training started."""
    if not run_dir.is_dir():
        return
    if {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", "checkpoints"}:
        shutil.rmtree(run_dir, ignore_errors=True)
        parent = run_dir.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
