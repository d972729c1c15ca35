"""``imgcls train``: resolve ``resume=``, validate every override combination, run Hydra.

Every override combination is composed and validated *before* Hydra runs anything, so a
typo fails with one line and no output folder. ``resume=`` is resolved here, before Hydra
would make a new folder: the run goes on in its own.
"""

from __future__ import annotations

import logging.config
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra

# torch.optim imports torch._dynamo (and sympy with it, about 1 s) when the first optimizer is
# built. Imported here, while the CLI holds the stop signals, no signal can cut that import
# half-way: a half-imported sympy broke what ran after it ("module 'sympy' has no attribute
# 'logic'", an internal error instead of the one interruption line).
import torch._dynamo  # noqa: F401
import yaml

from imgcls.app.hydra_job import (
    LaunchState,
    interrupted_launch,
    remove_unstarted_run,
    run_job,
)
from imgcls.app.resume import continue_run, target_from_overrides
from imgcls.app.run_folders import claim_output_folder, distributed_overrides
from imgcls.app.sweeps import last_sweep_dir, sweep_jobs
from imgcls.app.validation import validate
from imgcls.base import distributed
from imgcls.base.errors import UserError
from imgcls.base.folders import reset_unique_dirs
from imgcls.base.record import SweepFolder, parse_overrides
from imgcls.base.signals import signals_held
from imgcls.config.compose import compose, compose_once, register_configs
from imgcls.config.files import config_dir
from imgcls.config.flags import check_flags
from imgcls.config.overrides import NO_JOB_FLAGS, override_variants, search_space, split_arguments


def prevalidate(overrides: Sequence[str], multirun: bool) -> None:
    """Compose and validate the overrides; for a sweep, every value of every swept key, and
    the extremes of the sweeper's search space (``hparams_search=``) like a command-line sweep."""
    for variant in override_variants(overrides, multirun):
        validate(compose(variant))
    if multirun:
        validate_search_space(overrides)


def validate_search_space(overrides: Sequence[str]) -> None:
    """Each key of ``hydra.sweeper.params`` exists for the chosen components, and its values
    (an interval's bounds, a choice's options) pass validation: before the sweep folder is made."""
    space = search_space(overrides)
    if not space:
        return
    where = [o for o in overrides if o.startswith("hparams_search=")]
    source = where[-1] if where else "hydra.sweeper.params"
    try:
        for variant in override_variants([*overrides, *space], multirun=True):
            validate(compose(variant))
    except UserError as error:
        raise UserError(f"{error} (in the search space of {source})") from None


def run_train(args: Sequence[str]) -> int:
    """``imgcls train``: validate, then hand over to Hydra (run or multirun).

    A signal (SIGINT, SIGTERM, SIGHUP) before training takes it over leaves nothing of the
    run, or a run that ``resume=`` continues, and ends with one line
    (:func:`imgcls.app.hydra_job.interrupted_launch`).
    """
    state = LaunchState()
    try:
        return _launch(args, state)
    except KeyboardInterrupt as signal:
        raise interrupted_launch(signal, state) from None


def _launch(args: Sequence[str], state: LaunchState) -> int:
    args = check_flags(args)  # one line for a flag Hydra would refuse; flags first for Hydra
    flags, overrides = split_arguments(args)
    multirun = "-m" in flags or "--multirun" in flags
    register_configs()
    reset_unique_dirs()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's storage is chatty
    runs_job = not (NO_JOB_FLAGS & set(flags)) and not any(f in ("--cfg", "-c") for f in flags)
    if runs_job and any(o.startswith("resume=") for o in overrides):
        target = target_from_overrides(overrides, multirun)
        if target is not None:  # continue in that folder; Hydra would make a new one
            state.resumed = target
            return run_resumed(target)
    with compose_once():  # checking and claiming the folder compose the same overrides
        distributed_args, folder_args = _check_and_claim(overrides, multirun, runs_job, state)
    try:
        run_hydra([*args, *folder_args, *distributed_args], multirun, state)
    except Exception:  # Hydra itself failed (a full disk as it wrote .hydra/); signals: run_train
        if state.claim is not None:
            remove_unstarted_run(state.claim.path, state)
        raise
    finally:
        if distributed_args:
            distributed.shutdown()
    if state.error is not None:
        raise state.error
    sweep_dir = last_sweep_dir() if multirun else None
    if sweep_dir is not None and sweep_dir.is_dir():
        jobs = sweep_jobs(sweep_dir)
        return 0 if jobs and all(j.status == "completed" for j in jobs) else 1
    return 0


def _check_and_claim(
    overrides: Sequence[str], multirun: bool, runs_job: bool, state: LaunchState
) -> tuple[list[str], list[str]]:
    """Validate every override combination, then claim the run's (or sweep's) folder; the
    extra arguments Hydra gets: for torchrun's processes, and naming the claimed folder."""
    if runs_job:
        prevalidate(overrides, multirun)
    distributed_args = distributed_overrides(overrides, multirun) if runs_job else []
    folder_args: list[str] = []
    if runs_job and not distributed_args:
        with signals_held():  # the folder is made and recorded as one step, never half
            folder_args, state.claim = claim_output_folder(overrides, multirun)
            if multirun:
                _note_sweep(folder_args, state)
                state.sweep_generated = not any(
                    o.lstrip("+~").startswith(("hydra.sweep.dir=", "sweep.resume="))
                    for o in overrides
                )
    return distributed_args, folder_args


def _note_sweep(folder_args: Sequence[str], state: LaunchState) -> None:
    """The sweep's folder and the job folders it held before this launch (kept on a stop)."""
    folders = [o.value for o in parse_overrides(folder_args) if o.key == "hydra.sweep.dir"]
    if folders:
        state.sweep_dir = Path(str(folders[-1]))
        state.jobs_before = {job.path.name for job in SweepFolder(state.sweep_dir).job_folders()}


def run_hydra(args: Sequence[str], multirun: bool, state: LaunchState) -> None:
    """Hydra's own ``main`` on ``args``: it composes, makes folders, runs sweeps and launchers."""

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg) -> float | None:
        return run_job(cfg, multirun, state)

    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["imgcls train", *args]
    # Hydra prints its own failures (a full disk as it writes .hydra/) as a traceback and
    # exits; with this set it raises them, and the CLI prints its one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error


def run_resumed(run_dir: Path) -> int:
    """Continue ``run_dir`` with the console logging an ordinary run gets from Hydra."""
    settings = yaml.safe_load((config_dir() / "hydra" / "job_logging" / "imgcls.yaml").read_text())
    logging.config.dictConfig(settings)
    continue_run(run_dir)
    return 0
