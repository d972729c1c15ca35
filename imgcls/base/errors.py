"""Errors that the CLI turns into one line on stderr and an exit code, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what the user asked for: unknown name, bad value, missing or corrupt file.

    The CLI prints ``str(error)`` as one line and exits with :attr:`exit_code`.
    """

    exit_code = 2


class OptionError(ValueError):
    """A component option outside its rules, raised by an options dataclass's
    ``__post_init__`` as ``"<key>=<value> is invalid: <rule>"``; the registry puts the config
    path in front (``optimizer.lr=...``) and raises it as a :class:`UserError`."""


class UnreadableImageError(UserError):
    """An image file that Pillow refuses: corrupt, truncated, not an image, or a
    decompression bomb (more pixels than Pillow's limit). ``predict`` skips it by name;
    training stops with it, naming the file."""


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM after writing its state."""

    exit_code = 130


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``" — did you mean 'x'?"`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{matches[0]}'?" if matches else ""


def unknown_choice(kind: str, value: str, choices: Iterable[str]) -> UserError:
    """The standard error for a name that is not one of ``choices``."""
    options = sorted(choices)
    hint = did_you_mean(value, options) or ";"
    return UserError(f"unknown {kind} '{value}'{hint} available: {', '.join(options)}")
