"""Sweep bookkeeping that works with every Hydra launcher.

Jobs may run in other processes (joblib) or on other machines (submitit), so what a sweep
did is read back from its run folders, never from memory: each job leaves a summary.json
with its status and the hash of its resolved config, which is also how a re-run sweep
(``sweep.resume=<dir>``) recognises the jobs that already finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from imgcls.base.errors import UserError, one_line
from imgcls.base.record import RunFolder, RunOverride, SweepFolder
from imgcls.config.values import comparable_config
from imgcls.evaluate.html_report import write_runs_report
from imgcls.evaluate.leaderboard import sweep_leaderboard
from imgcls.evaluate.out_of_fold import headline, write_out_of_fold

logger = logging.getLogger("imgcls")


def config_hash(cfg: DictConfig) -> str:
    """A short stable hash of what a run computes (its resolved config minus launch keys)."""
    text = json.dumps(comparable_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class JobResult:
    """What one sweep job left in its folder (read back, whichever process ran it)."""

    run_dir: Path
    status: str
    config_hash: str | None
    error: str | None
    objective: float | None
    overrides: list[RunOverride] = field(default_factory=list)

    @property
    def folder(self) -> RunFolder:
        """The job's folder, to find its files."""
        return RunFolder(self.run_dir)


def read_job(run_dir: RunFolder | Path) -> JobResult | None:
    """The result a job left in ``run_dir``, or None when it left no readable summary."""
    run = RunFolder.of(run_dir)
    try:
        summary = run.read_summary()
    except UserError:
        return None
    return JobResult(
        run.path,
        summary.status,
        summary.config_hash,
        summary.error,
        summary.best_value,
        job_overrides(run),
    )


def job_overrides(run_dir: RunFolder | Path) -> list[RunOverride]:
    """The overrides Hydra recorded for a job (``.hydra/overrides.yaml``), or none."""
    try:
        return RunFolder.of(run_dir).read_overrides()
    except UserError:
        return []


def sweep_jobs(sweep_dir: SweepFolder | Path) -> list[JobResult]:
    """Every job folder of a sweep, finished or not, in job order."""
    sweep = sweep_dir if isinstance(sweep_dir, SweepFolder) else SweepFolder(sweep_dir)
    jobs = []
    for run in sweep.job_folders():
        job = read_job(run) or JobResult(
            run.path, "unfinished", None, "no readable summary.json", None, job_overrides(run)
        )
        jobs.append(job)
    return jobs


def find_job(sweep_dir: Path, digest: str) -> JobResult | None:
    """The job of this sweep that ran the config with hash ``digest`` (completed first)."""
    matches = [j for j in sweep_jobs(sweep_dir) if j.config_hash == digest]
    matches.sort(key=lambda j: j.status != "completed")
    return matches[0] if matches else None


def share_cores(hydra_cfg: DictConfig) -> int | None:
    """Give each job of a parallel local launcher its share of the cores (torch threads)."""
    launcher = OmegaConf.select(hydra_cfg, "launcher._target_", default="") or ""
    if "joblib" not in launcher:
        return None

    cores = os.cpu_count() or 1
    n_jobs = int(OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=-1) or -1)
    if n_jobs <= 0:
        n_jobs = cores
    threads = max(1, cores // n_jobs)
    torch.set_num_threads(threads)
    return threads


_last_sweep_dir: list[Path] = []


def last_sweep_dir() -> Path | None:
    """The folder of the last sweep this process ran, for the command that launched it."""
    return _last_sweep_dir[-1] if _last_sweep_dir else None


class SweepCallback(Callback):
    """Runs in the launching process when a multirun ends: report what every job did."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the sweep's leaderboard, jobs list and report, and say where they are."""
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        _last_sweep_dir.append(sweep_dir)
        if not sweep_dir.is_dir():
            return
        jobs = sweep_jobs(sweep_dir)
        done = sum(j.status == "completed" for j in jobs)
        logger.info(f"sweep finished: {done} of {len(jobs)} jobs completed in {sweep_dir}")
        for job in jobs:
            if job.status != "completed":
                logger.info(f"  {job.status}: {job.run_dir.name}: {job.error}")

        # jobs.json (every job: folder, status, error, overrides), leaderboard.csv and .md;
        # read back from the job folders, so a resumed sweep lists its earlier jobs too
        sweep_leaderboard(sweep_dir, jobs)
        write_out_of_fold_quietly(sweep_dir, [job.folder for job in jobs])
        if OmegaConf.select(config, "report.html", default=True):
            write_sweep_report_quietly(sweep_dir)


def write_out_of_fold_quietly(sweep_dir: Path, folders: list[RunFolder]) -> list[Path]:
    """A k-fold sweep's oof_predictions.csv and oof_metrics.json (nothing for other sweeps),
    with the out-of-fold figures logged; a problem is one warning line, never a failed
    sweep (``imgcls report <sweep>`` writes them again)."""
    try:
        written = write_out_of_fold(sweep_dir, folders)
        if written:
            record = json.loads(written[1].read_text(encoding="utf-8"))
            for line in headline(record):
                logger.info(line)
            logger.info(f"out-of-fold predictions: {written[0]}")
        return written
    except Exception as error:  # noqa: BLE001 - the leaderboard is already written
        logger.warning(f"could not write the out-of-fold files: {one_line(error, typed=True)}")
        return []


def write_sweep_report_quietly(sweep_dir: Path) -> Path | None:
    """The sweep's report.html (each job wrote its own; one that did not gets one now),
    logged with the time it took; a problem is one warning line, never a failed sweep."""
    started = time.perf_counter()
    try:
        path = write_runs_report([sweep_dir], run_reports="missing")
    except Exception as error:  # noqa: BLE001 - the leaderboard is already written
        logger.warning(f"could not write the sweep's report.html: {one_line(error, typed=True)}")
        return None
    logger.info(f"report: {path} ({time.perf_counter() - started:.2f}s)")
    return path
