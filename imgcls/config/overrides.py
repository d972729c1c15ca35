"""The ``imgcls train`` command line as Hydra reads it: flags, overrides and sweeps."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.override_parser.types import IntervalSweep
from omegaconf import DictConfig, OmegaConf

from imgcls.base.errors import UserError
from imgcls.config.arguments import parse_override
from imgcls.config.compose import compose
from imgcls.config.files import HYDRA_KEYS

# Hydra flags that take a value, and flags after which no job runs.
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
NO_JOB_FLAGS = {
    "-h",
    "--help",
    "--hydra-help",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--version",
}


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
    parsed = [parse_override(o) for o in config_overrides]  # a malformed one, by its name
    if not multirun:
        return [config_overrides]
    choices: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in _sweep_values(override)])
        else:
            choices.append([override.input_line])
    base = [values[0] for values in choices]
    variants = [base]
    for i, values in enumerate(choices):
        for value in values[1:]:
            variants.append([*base[:i], value, *base[i + 1 :]])
    return variants


def search_space(overrides: Sequence[str]) -> list[str]:
    """The sweeper's search space (``hydra.sweeper.params``, set by ``hparams_search=<name>``
    or on the command line) as overrides (``optimizer.lr=tag(log, interval(0.005, 0.2))``),
    without the keys the command line sweeps itself (those win, as in Hydra's sweepers)."""
    config_overrides = override_variants(overrides, multirun=True)[0]
    hydra_overrides = [o for o in overrides if o.startswith(HYDRA_KEYS)]
    cfg = compose([*config_overrides, *hydra_overrides], return_hydra=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if not isinstance(params, DictConfig):
        return []
    given = {parse_override(o).get_key_element() for o in overrides if not o.startswith(HYDRA_KEYS)}
    plain = OmegaConf.to_container(params, resolve=True)
    return [f"{key}={_as_override(value)}" for key, value in plain.items() if key not in given]


def _as_override(value: object) -> str:
    """A search-space value as the command line would give it (``[1, 2]`` for a list)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_as_override(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _sweep_values(override) -> list[str]:
    """The values a sweep can take; an interval sweep (Optuna's search space) by its bounds."""
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        if "log" in sweep.tags and min(sweep.start, sweep.end) <= 0:
            raise UserError(
                f"{override.input_line} is invalid: a log-scaled interval needs bounds above 0"
            )
        bounds = [sweep.start, sweep.end]
        if "int" in sweep.tags or (isinstance(sweep.start, int) and isinstance(sweep.end, int)):
            bounds = [int(b) for b in bounds]
        return [str(b) for b in bounds]
    return list(override.sweep_string_iterator())
