"""SIGINT, SIGTERM and SIGHUP outside training: an exception that unwinds, never a silent kill.

Python's defaults would let SIGTERM (``docker stop``, SLURM preemption) and SIGHUP (a closed
terminal or SSH session) kill the process at once, leaving a half-made run folder, and
SIGINT raise a bare KeyboardInterrupt. The CLI runs every command inside
:func:`signals_raise`: each of the three raises :class:`SignalReceived` where the program
is, so the command's clean-up runs and the CLI prints one line and exits 128 + the signal's
number. While the engine trains, :class:`imgcls.train.signals.StopRequest` takes them over
(a graceful stop with the state saved) and gives them back when training ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from imgcls.base.errors import TrainingInterrupted

# SIGHUP does not exist on Windows.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

Handler = Callable[[int, FrameType | None], object]


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class SignalReceived(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) that arrived outside training.

    A KeyboardInterrupt, so that ``except Exception`` (Hydra's, a library's) never swallows
    it and the code that already handles Ctrl-C handles every signal alike. The CLI exits
    with :attr:`exit_code`, 128 + the signal's number as a shell reports it (130, 143, 129).
    """

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"interrupted by {self.name}{detail}")

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal_name(self.signum)


def received(error: BaseException) -> SignalReceived:
    """``error`` (a KeyboardInterrupt, or an error caused by one) as the signal behind it;
    a plain KeyboardInterrupt is Ctrl-C (SIGINT)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, SignalReceived):
            return cause
        cause = cause.__cause__ or cause.__context__
    code = getattr(error, "exit_code", 130)
    return SignalReceived(code - 128 if isinstance(code, int) and code > 128 else signal.SIGINT)


def _install(handler: Handler) -> dict[int, object]:
    """Set ``handler`` for every stop signal; the previous handlers, to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers (and receives the signals)
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


# The signals :func:`signals_raise` turned into exceptions, in order: a library's bare
# ``except:`` may swallow the exception, never this record (see :func:`first_received`).
_received: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise SignalReceived(signum)


def first_received() -> int | None:
    """The first stop signal received inside :func:`signals_raise`, or None.

    The exception a signal raises can be swallowed by code that catches everything; training
    (:class:`imgcls.train.signals.StopRequest`), each sweep job and the CLI check this too,
    so a signal is never lost.
    """
    return _received[0] if _received else None


def raise_if_received() -> None:
    """Raise :class:`SignalReceived` again for a stop signal that was received earlier."""
    signum = first_received()
    if signum is not None:
        raise SignalReceived(signum)


@contextmanager
def signals_raise(*, ignore_after: bool = False) -> Iterator[None]:
    """Inside the block, SIGINT, SIGTERM and SIGHUP raise :class:`SignalReceived`.

    ``ignore_after`` ignores them once the block has ended, instead of restoring the
    previous handlers: the program's command is over and its work on disk, and Python's
    defaults would kill the exiting process silently (SIGHUP, SIGTERM) or raise in its
    finalization (SIGINT), turning a completed run into a failed exit.
    """
    _received.clear()
    previous = _install(_raise)
    try:
        yield
    except Exception as error:
        signum = first_received()
        if signum is None or isinstance(error, TrainingInterrupted):
            raise
        # The signal's exception cut something half-way (a library's import, say) and the
        # code after it tripped over the remains: the signal is the cause, and the exit says so.
        raise SignalReceived(signum) from error
    finally:
        _restore({signum: signal.SIG_IGN for signum in previous} if ignore_after else previous)
        _received.clear()


@contextmanager
def signals_held(*, raise_after: bool = True) -> Iterator[list[int]]:
    """Hold the stop signals for the block: a folder being claimed, or a clean-up, is never
    cut half-way. The first one held is raised after the block (``raise_after``) when the
    block ends normally; the list of those held is what the block sees."""
    held: list[int] = []
    previous = _install(lambda signum, frame: held.append(signum))
    try:
        yield held
    finally:
        _restore(previous)
    if held and raise_after:
        raise SignalReceived(held[0])
