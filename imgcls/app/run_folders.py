"""Claiming a run's (or sweep's) folder before Hydra starts, and handing it to Hydra by name.

Hydra would create the folder itself and write ``.hydra/`` into it before any imgcls code
runs: into a finished run's folder, or into a path that cannot be a folder, with a
traceback. Claiming it first makes those one-line errors, and lets DDP ranks share rank 0's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from imgcls.base import distributed
from imgcls.base.errors import UserError, one_line
from imgcls.base.folders import (
    check_place,
    claim_run_folder,
    ensure_dir,
    made_for,
    refuse_non_empty,
)
from imgcls.base.record import SweepFolder, parse_overrides
from imgcls.config.compose import compose
from imgcls.config.files import HYDRA_KEYS
from imgcls.config.overrides import override_variants
from imgcls.train.devices import select_device


@dataclass
class Claim:
    """The folder a single run was given before Hydra started, and how it came to be."""

    path: Path
    # the folders made for it, outermost first: all a failed start may remove (an empty
    # folder the user named, which existed before, is not among them and stays)
    made: tuple[Path, ...] = ()


def resume_sweep_overrides(overrides: Sequence[str], multirun: bool) -> list[str]:
    """``sweep.resume=<dir>`` re-runs a sweep into its old folder: ``hydra.sweep.dir=<dir>``."""
    resume = [str(o.value) for o in parse_overrides(overrides) if o.key == "sweep.resume"]
    if not resume or resume[-1] in ("null", "None", ""):
        return []
    folder = Path(resume[-1])
    if not multirun:
        raise UserError(f"sweep.resume={folder} resumes a sweep: add -m (--multirun)")
    sweep = SweepFolder(folder)
    if not folder.is_dir() or not (sweep.multirun_yaml.is_file() or sweep.has_jobs()):
        raise UserError(
            f"sweep.resume={folder} is not a sweep folder (no multirun.yaml and no job folders)"
        )
    return [f"hydra.sweep.dir={folder.resolve()}"]


def claim_output_folder(overrides: Sequence[str], multirun: bool) -> tuple[list[str], Claim | None]:
    """Take the run (or sweep) folder before Hydra starts, and hand it to Hydra by name.

    Hydra would create it itself and write ``.hydra/`` into it before any imgcls code runs:
    into a finished run's folder, or into a path that cannot be a folder, with a traceback.
    Here a named run folder that holds a run is refused (only ``resume=`` continues a run in
    its own folder), and a folder that cannot be created is one line naming it.
    """
    resumed = resume_sweep_overrides(overrides, multirun)  # refused without -m
    if multirun:
        if resumed:
            return resumed, None
        sweep_dir = Path(resolve_output_dir(overrides, "hydra.sweep.dir"))
        if _named(overrides, "hydra.sweep.dir") and not _is_sweep(sweep_dir):
            refuse_non_empty(sweep_dir, "hydra.sweep.dir", SWEEP_ADVICE)
        ensure_dir(sweep_dir, "sweep directory")
        return [f"hydra.sweep.dir={_quoted(sweep_dir.resolve())}"], None
    claim = claim_single_run(overrides)
    return [f"hydra.run.dir={_quoted(claim.path.resolve())}"], claim


def claim_single_run(overrides: Sequence[str]) -> Claim:
    """A fresh generated run folder, or the one ``hydra.run.dir=`` names (checked)."""
    path = Path(resolve_output_dir(overrides, "hydra.run.dir"))
    if not _named(overrides, "hydra.run.dir"):  # the imgcls_unique_dir resolver made it
        return Claim(path, made_for(path) or (path,))
    folder, made = claim_run_folder(path)
    return Claim(folder, made)


SWEEP_ADVICE = "a sweep needs a new or empty folder (or sweep.resume=<its folder>)"


def _named(overrides: Sequence[str], key: str) -> bool:
    """True when the user set ``key`` (``hydra.run.dir=``) on the command line."""
    return any(o.lstrip("+~").startswith(f"{key}=") for o in overrides)


def _is_sweep(folder: Path) -> bool:
    """A folder an imgcls sweep made (its multirun.yaml or jobs.json): a sweep may go on
    into it, each job in a folder of its own."""
    sweep = SweepFolder(folder)
    return sweep.multirun_yaml.is_file() or sweep.jobs_json.is_file()


def resolve_output_dir(overrides: Sequence[str], key: str) -> str:
    """The folder ``hydra.run.dir`` or ``hydra.sweep.dir`` names for these overrides.

    Resolving the default claims a fresh folder (the ``imgcls_unique_dir`` resolver); the
    result is passed to Hydra literally, so Hydra never resolves it a second time.
    """
    config_overrides = override_variants(overrides, multirun=key == "hydra.sweep.dir")[0]
    hydra_overrides = [o for o in overrides if o.startswith(HYDRA_KEYS)]
    cfg = compose([*config_overrides, *hydra_overrides], return_hydra=True)
    HydraConfig.instance().set_config(cfg)
    root = OmegaConf.select(cfg, "output_root", throw_on_resolution_failure=False)
    if root is not None:  # checked before the default folder is resolved, which makes it
        check_place(str(root), "output_root")
    if _named(overrides, key):
        check_place(str(OmegaConf.select(cfg, key, throw_on_resolution_failure=False)), key)
    try:
        return str(OmegaConf.select(cfg, key))
    except Exception as error:  # a resolver failed: report its own UserError if it was one
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise UserError(f"cannot resolve {key}: {one_line(error)}") from error


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
    if not distributed.launched_by_torchrun():
        if "trainer.strategy=ddp" in overrides:
            raise UserError(
                "trainer.strategy=ddp needs several processes: launch with "
                "torchrun --nproc_per_node=N -m imgcls train trainer.strategy=ddp ..."
            )
        return []
    cfg = compose([o for o in overrides if not o.startswith(HYDRA_KEYS)])
    if cfg.trainer.strategy.name != "ddp":  # an Enum (imgcls.config.options.trainer.Strategy)
        return []
    if multirun:
        raise UserError("trainer.strategy=ddp runs one training job; it cannot be combined with -m")
    # The device the run will train on (place() chooses it the same way): NCCL for CUDA,
    # which also checks that this machine has a GPU for each of its processes.
    ctx = distributed.initialize(select_device(str(cfg.trainer.device)).type)
    run_dir = None
    if ctx.is_main:
        run_dir = str(claim_single_run(overrides).path.resolve())
    run_dir = distributed.broadcast(run_dir)
    extra = [f"hydra.run.dir={_quoted(Path(run_dir))}"]
    if not ctx.is_main:
        extra.append("hydra.output_subdir=null")  # rank 0 alone writes .hydra/
    return extra
