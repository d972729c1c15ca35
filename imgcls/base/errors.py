"""Errors that the CLI turns into one line on stderr and an exit code, without a traceback."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what the user asked for: unknown name, bad value, missing or corrupt file.

    The CLI prints :func:`error_line` of it and exits with :attr:`exit_code`.
    """

    exit_code = 2


class OptionError(ValueError):
    """A component option outside its rules, raised by an options dataclass's
    ``__post_init__`` as ``"<key>=<value> is invalid: <rule>"``; the registry puts the config
    path in front (``optimizer.lr=...``) and raises it as a :class:`UserError`."""


class ChoiceError(OptionError):
    """An option that is not one of its choices (an Enum's members); the registry turns it
    into the standard unknown-choice line naming the full key and the valid values."""

    def __init__(self, key: str, value: object, choices: Iterable[str]) -> None:
        self.key, self.value, self.choices = key, value, sorted(choices)
        super().__init__(f"{key}={value} is invalid: use one of {', '.join(self.choices)}")


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


def one_line(
    error: BaseException, *, typed: bool = False, first_line: bool = False, limit: int | None = None
) -> str:
    """An exception's text on one line, for an error message or a log line.

    Every run of whitespace (newlines included) becomes one space; with ``first_line`` only
    the first non-empty line is kept (for texts that go on with a traceback or a dump, as
    MLflow's, torch's and the ONNX exporters' do); the text is cut at ``limit`` characters.
    An exception without text is named by its type; ``typed`` puts the type's name first
    (``ValueError: ...``), for errors that are not the user's mistakes.
    """
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = " ".join(" ".join(lines[:1] if first_line else lines).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    name = type(error).__name__
    if not text:
        return name
    return f"{name}: {text}" if typed else text


# Failures of the machine rather than of imgcls: a full disk or quota, a read-only or
# forbidden place, a name too long, a failing disk. They are the user's to fix, not bugs.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.EIO,
    }
)

# What sets the memory a run needs: named when it runs out.
MEMORY_KEYS = "trainer.batch_size, dataset.image_size, dataset.num_samples or model.widths"


def environment_error(error: BaseException) -> UserError | None:
    """The one-line :class:`UserError` for an error the machine caused, or None for a bug.

    A full disk, a read-only place, a missing permission or a file name too long (an
    :class:`OSError` with one of :data:`ENVIRONMENT_ERRNOS`, here or in the chain of errors
    that led to ``error``) names the file; running out of memory (CPU or CUDA) names the
    keys that set the size of a run. Translating here, once, spares every writer a case.
    """
    for cause in error_chain(error):
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT_ERRNOS:
            return UserError(_os_error_text(cause))
        if _is_out_of_memory(cause):
            detail = one_line(cause, first_line=True, limit=160)
            return UserError(f"out of memory ({detail}); make the run smaller with {MEMORY_KEYS}")
    return None


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from or while handling, without cycles (torch
    raises a RuntimeError while handling the OSError of a full disk, for one)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _os_error_text(error: OSError) -> str:
    """``<file>: <reason>`` (``<file> -> <other>`` for a rename), with what to do when full."""
    reason = error.strerror or one_line(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free some space, then run again or continue with resume=)"
    names = [str(n) for n in (error.filename, error.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _is_out_of_memory(error: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError (CPU or CUDA) and the allocator's messages."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def error_line(error: BaseException) -> tuple[str, int]:
    """The one line the CLI prints for ``error`` on stderr, and the exit code.

    A user mistake (:class:`UserError`) is its own message and exits 2, and so is a failure
    of the machine (:func:`environment_error`: disk full, out of memory, ...); an
    interruption (Ctrl-C, SIGTERM) says so and exits with its code (130 for Ctrl-C);
    anything else is a bug: the type and message, a hint to report it, and exit 1.
    """
    if not isinstance(error, (UserError, KeyboardInterrupt, TrainingInterrupted)):
        error = environment_error(error) or error
    if isinstance(error, UserError):
        return f"imgcls: error: {one_line(error)}", error.exit_code
    if isinstance(error, (KeyboardInterrupt, TrainingInterrupted)):
        code = getattr(error, "exit_code", TrainingInterrupted.exit_code)
        text = one_line(error) if str(error).strip() else "interrupted"
        return f"imgcls: {text}", code
    return (
        f"imgcls: internal error: {one_line(error, typed=True, first_line=True)} "
        "(set IMGCLS_DEBUG=1 to see the traceback, and please report it)",
        1,
    )
