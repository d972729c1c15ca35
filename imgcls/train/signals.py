"""Graceful stop on SIGINT / SIGTERM / SIGHUP: the engine finishes its step, saves, then stops.

While :class:`StopRequest` is active the first SIGINT, SIGTERM or SIGHUP (a closed terminal
or SSH session) only sets a flag that the engine reads after each optimizer step (a plain
Python check, no device work). A second SIGINT stops at once, for a user who does not want
to wait. Outside training the same signals raise at once (:mod:`imgcls.base.signals`).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

from imgcls.base.signals import STOP_SIGNALS, SignalReceived, first_received, signal_name

# A shell's exit code for a process a signal stopped: 128 + its number (130, 143, 129).
EXIT_CODES = {signum: 128 + int(signum) for signum in STOP_SIGNALS}


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP as a request to stop, not an exception in mid-step.

    Inside ``with StopRequest()``, the first signal only sets :attr:`requested`; the engine
    stops after the current optimizer step, saves the exact position and raises
    TrainingInterrupted. A second SIGINT interrupts at once. Handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal_name(self.signum) if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130) if self.signum is not None else 130

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise SignalReceived(signum)
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> StopRequest:
        if self.signum is None:  # one received earlier whose exception was swallowed
            self.signum = first_received()
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
