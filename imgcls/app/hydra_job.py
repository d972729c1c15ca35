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
from imgcls.base.processes import process_identity
from imgcls.base.record import GONE_STATUS, RunFolder, Summary, SweepFolder
from imgcls.base.runs import remove_unstarted
from imgcls.base.signals import raise_if_received, received, signals_held

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
    sweep_dir: Path | None = None  # a multirun's folder
    jobs_before: set[str] = field(default_factory=set)  # its job folders before this launch
    sweep_generated: bool = False  # the sweep's folder is a fresh default one (no name given)
    resumed: Path | None = None  # the run ``resume=`` continues


def run_job(cfg, multirun: bool, state: LaunchState) -> float | None:
    """One Hydra job: train into Hydra's output folder and record how it ended.

    Returns the best value of the monitored metric (the objective of Hydra's sweepers such
    as Optuna), or None when the job failed, which a sweeper records as a failed trial.
    """
    raise_if_received()  # a signal whose exception something swallowed: no job starts
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
        if isinstance(error, TrainingInterrupted):
            state.error = interrupted_job(run_dir, error, state)
            if multirun:  # the sweep stops: Hydra's launchers let only a BaseException through
                raise received(error) from error
        elif not multirun:
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
        if job.status == "running" and _mark_gone_elsewhere(run_dir):
            job.status = GONE_STATUS
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


def _mark_gone_elsewhere(run_dir: Path) -> bool:
    """A job's own summary that says running on another host cannot be checked from here,
    yet this job is the one Hydra runs now (a requeue): the earlier process is gone."""
    run = RunFolder(run_dir)
    summary = run.read_summary()
    if (summary.process or {}).get("host") in (None, process_identity()["host"]):
        return False
    summary.status = GONE_STATUS
    summary.write(run.summary_json)
    return True


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


def interrupted_job(
    run_dir: Path, error: TrainingInterrupted, state: LaunchState
) -> TrainingInterrupted:
    """What a signal leaves of a job: a resumable run (its last.pt is kept and ``error`` says
    how to continue), or nothing, when it came before the first checkpoint."""
    with signals_held(raise_after=False):  # a second signal never cuts the clean-up short
        drop_own_summary(run_dir)
        remove_unstarted_run(run_dir, state)
    if RunFolder(run_dir).last_checkpoint.is_file():
        return error
    return _nothing_kept(received(error))


def interrupted_launch(signal: KeyboardInterrupt, state: LaunchState) -> TrainingInterrupted:
    """The one error a signal during ``imgcls train``'s start-up ends with, after removing
    what this launch made of a run that never reached its first checkpoint.

    Left behind is either nothing or a run that ``resume=`` (a sweep: ``sweep.resume=``)
    continues; the error's exit code is 128 + the signal's number.
    """
    stop = received(signal)
    with signals_held(raise_after=False):
        if state.resumed is not None:  # its files are as they were, or resumable
            return _interrupted(
                f"{stop}; {state.resumed} is kept: continue with "
                f"imgcls train resume={state.resumed}",
                stop.exit_code,
            )
        for run_dir in _launched_runs(state):
            drop_own_summary(run_dir)
            remove_unstarted_run(run_dir, state)
        _remove_unstarted_sweep(state)
    if (
        state.sweep_dir is not None
        and state.sweep_dir.is_dir()
        and SweepFolder(state.sweep_dir).has_jobs()
    ):
        return _interrupted(
            f"{stop}: the sweep stopped; continue it with the same command and "
            f"sweep.resume={state.sweep_dir}",
            stop.exit_code,
        )
    if isinstance(state.error, TrainingInterrupted):
        return state.error
    for run_dir in _launched_runs(state):
        if read_job(run_dir) is not None:  # it reached a checkpoint, or completed
            return _interrupted(f"{stop}; {_what_is_kept(run_dir)}", stop.exit_code)
    return _nothing_kept(stop)


def _what_is_kept(run_dir: Path) -> str:
    job = read_job(run_dir)
    if job is not None and job.status == "completed":
        return f"the run had completed: its results are in {run_dir}"
    return f"the state is in {run_dir}: continue with imgcls train resume={run_dir}"


def _launched_runs(state: LaunchState) -> list[Path]:
    """The run folders this launch made: the claimed one, or the sweep's new job folders."""
    if state.sweep_dir is not None:
        if not state.sweep_dir.is_dir():
            return []
        jobs = SweepFolder(state.sweep_dir).job_folders()
        return [job.path for job in jobs if job.path.name not in state.jobs_before]
    if state.claim is not None and state.claim.path.is_dir():
        return [state.claim.path]
    return []


def _remove_unstarted_sweep(state: LaunchState) -> None:
    """A fresh sweep folder that no job got into: Hydra's multirun.yaml and the folder go."""
    sweep = SweepFolder(state.sweep_dir) if state.sweep_dir is not None else None
    if sweep is None or not state.sweep_generated or not sweep.path.is_dir():
        return
    if sweep.job_folders():
        return
    sweep.multirun_yaml.unlink(missing_ok=True)
    # the default is <output_root>/multirun/<date>/<time>: output_root itself stays
    for folder in (sweep.path, sweep.path.parent, sweep.path.parent.parent):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def drop_own_summary(run_dir: Path) -> None:
    """Delete the summary.json (and the report.html written after it) that this process wrote
    for a run with no checkpoint yet, so that the clean-up of an unstarted run removes the
    rest: without a last.pt nothing can be resumed."""
    run = RunFolder(run_dir)
    _close_logs_in(run_dir)  # a signal between train.log's opening and run_status' start
    if run.has_checkpoints() or not run.summary_json.is_file():
        return
    try:
        written_by = run.read_summary().process
    except UserError:
        return
    if written_by != process_identity():
        return
    written = run.summary_json.stat().st_mtime
    report = run.report_html
    if report.is_file() and report.stat().st_mtime >= written:  # not a file from before
        report.unlink(missing_ok=True)
    run.summary_json.unlink(missing_ok=True)


def _close_logs_in(run_dir: Path) -> None:
    """Detach and close the ``imgcls`` logger's file handlers that write into ``run_dir``."""
    folder = run_dir.resolve()
    for handler in list(logger.handlers):
        name = getattr(handler, "baseFilename", None)
        if name is not None and Path(name).resolve().is_relative_to(folder):
            logger.removeHandler(handler)
            handler.close()


def _interrupted(text: str, exit_code: int) -> TrainingInterrupted:
    error = TrainingInterrupted(text)
    error.exit_code = exit_code
    return error


def _nothing_kept(stop: BaseException) -> TrainingInterrupted:
    code = getattr(stop, "exit_code", TrainingInterrupted.exit_code)
    return _interrupted(f"{stop} during start-up; nothing was kept", code)
