"""``imgcls train resume=...`` from the command line, without Hydra making a new folder.

The run directory to continue is resolved *before* Hydra runs, and the resumed run is
started directly in it, so no empty output folder is left behind. ``resume=auto`` without a
matching unfinished run falls through to an ordinary Hydra run.
"""

from __future__ import annotations

import logging.config
from collections.abc import Sequence
from pathlib import Path

import yaml

from imgcls.config import compose, config_dir, validate
from imgcls.errors import UserError

HYDRA_PREFIXES = ("hydra.", "hydra/", "+hydra", "~hydra", "++hydra")


def resume_target(overrides: Sequence[str], multirun: bool) -> Path | None:
    """The run directory to continue, or None when ``resume=auto`` finds none."""
    from imgcls.train import resume

    if multirun:
        raise UserError("resume= continues one run; it cannot be combined with -m (--multirun)")
    value = next(o.split("=", 1)[1] for o in overrides if o.startswith("resume="))
    if value in ("", "null", "None"):
        return None
    if value != "auto":
        others = [o for o in overrides if not o.startswith(("resume=", *HYDRA_PREFIXES))]
        if others:
            raise UserError(
                f"resume={value} continues that run with its own config; remove the other "
                f"overrides ({' '.join(others)}) or use resume=auto with them"
            )
        return resume.check_run_dir(value)
    cfg = compose(list(overrides))
    validate(cfg)
    found = resume.find_unfinished(cfg)
    return resume.check_run_dir(found) if found is not None else None


def run_resumed(run_dir: Path) -> int:
    """Continue ``run_dir`` with the console logging an ordinary run gets from Hydra."""
    from imgcls.train.resume import resume_run

    settings = yaml.safe_load((config_dir() / "hydra" / "job_logging" / "imgcls.yaml").read_text())
    logging.config.dictConfig(settings)
    resume_run(run_dir)
    return 0
