"""Hydra's flags on the ``imgcls train`` command line, checked before Hydra runs.

Hydra refuses some flags and combinations (``-m --cfg job``, ``--resolve`` without ``--cfg``)
with a Python exception, and its argument parser prints a usage block; here each becomes one
line naming the flag. ``--cfg``, ``--info`` and ``--help`` print what Hydra composes: the
overrides are composed first, so a mistake in them is one line too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hydra._internal.utils import get_args_parser

from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.files import HYDRA_KEYS
from imgcls.config.values import resolved

# Hydra's commands: a launch runs one of them (a run when none is named).
_COMMANDS = {
    "run": "--run",
    "multirun": "-m (--multirun)",
    "cfg": "--cfg",
    "info": "--info",
    "shell_completion": "--shell-completion",
}


class _Parser(argparse.ArgumentParser):
    """Hydra's argument parser, raising a one-line UserError instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        """An argument Hydra's parser refuses: one line naming it."""
        raise UserError(f"imgcls train: {message} (see imgcls train --help)")


def parse_flags(args: Sequence[str]) -> argparse.Namespace:
    """Hydra's reading of ``args`` (its flags and overrides); a bad flag is one line."""
    parser = _Parser(add_help=False)
    for action in get_args_parser()._actions:
        if action.dest in ("version",):  # Hydra answers --version itself
            continue
        parser._add_action(action)
    args = list(args)
    for i, arg in enumerate(args[:-1]):  # `--info model=lenet`: --info's value is optional
        if arg in ("--info", "-i") and "=" in args[i + 1]:
            args[i] = "--info=all"
    return parser.parse_intermixed_args(args)


def hydra_argv(flags: argparse.Namespace) -> list[str]:
    """The command line for Hydra's own parser: the flags first, then the overrides (Hydra's
    parser refuses an override after a flag, as in ``a=1 -m b=2``)."""
    argv = [
        option
        for dest, option in (
            ("help", "--help"),
            ("hydra_help", "--hydra-help"),
            ("resolve", "--resolve"),
            ("run", "--run"),
            ("multirun", "--multirun"),
            ("shell_completion", "--shell-completion"),
        )
        if getattr(flags, dest)
    ]
    for dest, option in (
        ("cfg", "--cfg"),
        ("package", "--package"),
        ("config_path", "--config-path"),
        ("config_name", "--config-name"),
        ("config_dir", "--config-dir"),
        ("info", "--info"),
    ):
        if getattr(flags, dest) is not None:
            argv += [option, str(getattr(flags, dest))]
    return [*argv, *flags.overrides]


def check_flags(args: Sequence[str]) -> list[str]:
    """Refuse, in one line each, the flags and combinations Hydra would refuse with a
    traceback, and those that would bypass imgcls's checks; compose the overrides of
    ``--cfg`` and ``--info`` so that a mistake in them is one line too.

    Returns the command line for Hydra: flags first, then the overrides.
    """
    if "--version" in args:
        return list(args)  # Hydra answers it, whatever else is given
    flags = parse_flags(args)
    if flags.hydra_help:  # Hydra's own groups; it cannot compose the run's overrides with them
        flags.overrides = [o for o in flags.overrides if o.startswith(HYDRA_KEYS)]
        return hydra_argv(flags)
    if flags.help:  # Hydra prints the help and the composed config, whatever else is given
        _compose_shown(flags)
        return hydra_argv(flags)
    chosen = [text for dest, text in _COMMANDS.items() if getattr(flags, dest)]
    if flags.info is not None and _COMMANDS["info"] not in chosen:
        chosen.append(_COMMANDS["info"])
    if len(chosen) > 1:
        hint = (
            " (--cfg prints one composed config: drop -m)" if flags.cfg and flags.multirun else ""
        )
        raise UserError(f"{' and '.join(chosen)} cannot be combined: use one of them{hint}")
    if flags.resolve and not flags.cfg:
        raise UserError("--resolve only works with --cfg (e.g. --cfg job --resolve)")
    if flags.experimental_rerun is not None:
        raise UserError(
            "--experimental-rerun is not supported by imgcls train: continue a run with "
            "resume=<run dir>"
        )
    if flags.config_name not in (None, "train") or flags.config_path is not None:
        raise UserError(
            "imgcls train composes its own conf/train.yaml: --config-name and --config-path "
            "are not supported (choose a recipe with experiment=<name>)"
        )
    if flags.config_dir is not None and not Path(flags.config_dir).is_dir():
        raise UserError(f"--config-dir {flags.config_dir}: no such folder")
    if flags.cfg or flags.info is not None:
        _compose_shown(flags)
    return hydra_argv(flags)


def _compose_shown(flags: argparse.Namespace) -> None:
    """Compose the config Hydra is about to print, so that a mistake in it is one line."""
    shown = compose([o for o in flags.overrides if not o.startswith(HYDRA_KEYS)])
    if flags.resolve:
        resolved(shown)
