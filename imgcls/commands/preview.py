"""``imgcls preview dataset=... augment=...``: a PNG grid of augmented training images.

The overrides are Hydra's (composed like ``imgcls train``); :mod:`imgcls.app.preview` does the
work. ``hydra.run.dir=DIR`` is the one Hydra setting a preview takes: it writes one image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imgcls.app.preview import compose_preview, preview
from imgcls.base.errors import UserError
from imgcls.base.record import parse_overrides
from imgcls.config.files import HYDRA_KEYS


def run_preview(args: Sequence[str]) -> int:
    """``imgcls preview [overrides]``: print the path of the PNG grid."""
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise UserError(
            f"imgcls preview takes overrides only (got {' '.join(flags)}); e.g. "
            "imgcls preview dataset=cifar10 augment=strong images=64"
        )
    overrides, run_dir = split_run_dir(args)
    print(preview(compose_preview(overrides), run_dir))
    return 0


def split_run_dir(args: Sequence[str]) -> tuple[list[str], Path | None]:
    """The overrides, and the folder ``hydra.run.dir=DIR`` names (the only Hydra setting a
    preview takes: it writes one image, not a Hydra run)."""
    parsed = parse_overrides(args)
    run_dirs = [str(o.value) for o in parsed if o.key == "hydra.run.dir"]
    others = [o.text for o in parsed if o.is_hydra and o.key != "hydra.run.dir"]
    if others:
        raise UserError(
            f"imgcls preview takes no Hydra setting but hydra.run.dir=DIR (got {' '.join(others)})"
        )
    overrides = [a for a in args if not a.startswith(HYDRA_KEYS)]
    return overrides, Path(run_dirs[-1]) if run_dirs else None
