"""Library versions and the git commit, recorded in every summary.json."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    *("imgcls", "torch", "torchvision", "hydra-core", "omegaconf", "numpy", "scikit-learn"),
    "timm",  # the optional extra imgcls[timm]: "not installed" without it
)


def library_versions() -> dict[str, str]:
    """Python's and the installed libraries' versions, recorded in every summary for
    reproducibility.
    """
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the imgcls checkout that ran (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
