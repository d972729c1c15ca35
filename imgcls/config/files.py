"""The config files: where ``conf/`` is, its groups' options and their descriptions."""

from __future__ import annotations

from pathlib import Path

from imgcls.base.errors import UserError

# Groups whose options are registry components, in the order a run builds them.
COMPONENT_GROUPS = (
    "model",
    "dataset",
    "augment",
    "scheduler",
    "regularizer",
    "optimizer",
    "logger",
    "method",
    "loss",
)
# Groups that select several options at once (``regularizer=[l2,label_smoothing]``).
LIST_GROUPS = ("regularizer", "logger")
GROUPS = (*COMPONENT_GROUPS, "trainer", "experiment", "recipe")  # what `imgcls list` shows
# Override prefixes that configure Hydra itself (``hydra.run.dir=...``), not the run.
HYDRA_KEYS = ("hydra.", "hydra/", "+hydra", "~hydra", "++hydra")


def config_dir() -> Path:
    """The config root: ``conf/`` beside the package in a checkout, ``imgcls/conf`` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "conf", package / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise UserError(
        f"imgcls config files not found in {package.parent / 'conf'} or {package / 'conf'}"
    )


def group_options(group: str) -> list[str]:
    """The option names of a config group: the YAML file names in ``conf/<group>/``."""
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def option_description(group: str, option: str) -> str:
    """The first comment line of ``conf/<group>/<option>.yaml`` (not the ``@package`` line)."""
    path = config_dir() / group / f"{option}.yaml"
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and "@package" not in text:
            return text.lstrip("#").strip()
        if text and not text.startswith("#"):
            break
    return ""
