"""One Hydra job of ``imgcls train``: train into Hydra's folder and record how it ended.

In a multirun a failing job is recorded as failed (its summary.json says why) and the sweep
goes on; a job that already ran (``sweep.resume``, a requeued SLURM job) is skipped or
continued instead of trained again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from imgcls.app.job import train
from imgcls.app.resume import continue_run
from imgcls.app.run_folders import Claim
from imgcls.app.sweeps import JobResult, config_hash, find_job, read_job, share_cores
from imgcls.base.errors import TrainingInterrupted, UserError, one_line
from imgcls.base.record import RunFolder, Summary
from imgcls.base.runs import remove_unstarted

logger = logging.getLogger("imgcls")


@dataclass
class JobRecord:
    """How one job of this launch ended, as the launching process saw it."""

    run_dir: str
    status: str
    error: str | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class LaunchState:
    """What the jobs of one ``imgcls train`` launch did, and the folder claimed for it."""

    jobs: list[JobRecord] = field(default_factory=list)
    error: BaseException | None = None
    claim: Claim | None = None


def run_job(cfg, multirun: bool, state: LaunchState) -> float | None:
    """One Hydra job: train into Hydra's output folder and record how it ended.

    Returns the best value of the monitored metric (the objective of Hydra's sweepers such
    as Optuna), or None when the job failed, which a sweeper records as a failed trial.
    """
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
        return result.record.best_value
    except (UserError, TrainingInterrupted) as error:
        state.jobs.append(JobRecord(str(run_dir), _status(error), str(error), overrides))
        if not multirun or isinstance(error, TrainingInterrupted):
            remove_unstarted_run(run_dir, state)
            state.error = error
        else:
            record_failure(run_dir, cfg, error)
            logger.error(f"job failed: {one_line(error)}")
    except Exception as error:
        if not multirun:  # an unexpected error: the CLI reports it; no half-made folder stays
            remove_unstarted_run(run_dir, state)
            state.error = error
            return None
        logger.exception(f"job failed: {one_line(error, typed=True)}")
        record_failure(run_dir, cfg, error)
        state.jobs.append(JobRecord(str(run_dir), "failed", one_line(error, typed=True), overrides))
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
        if not job.folder.last_checkpoint.is_file():
            return None  # nothing to continue from: run it again
        logger.info(f"resuming the unfinished job {job.run_dir.name}")
        if job.run_dir.resolve() != run_dir.resolve():
            remove_unstarted_run(run_dir)
        continue_run(job.run_dir)
        return read_job(job.run_dir)
    logger.info(f"skipping a finished job: {job.run_dir.name} already ran this config")
    if job.run_dir.resolve() != run_dir.resolve():
        remove_unstarted_run(run_dir)
    return job


def record_failure(run_dir: Path, cfg, error: BaseException) -> None:
    """A failed sweep job keeps a summary.json that says why, so the sweep's reports list it."""
    run = RunFolder(run_dir)
    if run.summary_json.exists():
        return
    Summary(
        status="failed",
        error=str(error) or type(error).__name__,
        run_dir=str(run_dir),
        config_hash=config_hash(cfg),
    ).write(run.summary_json)


def _status(error: BaseException) -> str:
    return "interrupted" if isinstance(error, TrainingInterrupted) else "failed"


def remove_unstarted_run(run_dir: Path, state: LaunchState | None = None) -> None:
    """Delete what Hydra and imgcls wrote for a job that failed before training started.

    Only what this process made goes: a folder the user named that existed before the run
    keeps existing (empty), and so do the folders above a run folder.
    """
    claim = state.claim if state is not None else None
    if claim is not None and claim.path.resolve() == run_dir.resolve():
        remove_unstarted(run_dir, claim.made)
    else:
        remove_unstarted(run_dir)
