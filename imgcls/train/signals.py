"""Graceful stop on SIGINT / SIGTERM: the engine finishes its step, saves, then stops.

While :class:`StopRequest` is active the first SIGINT or SIGTERM only sets a flag that the
engine reads after each optimizer step (a plain Python check, no device work). A second
SIGINT stops at once with KeyboardInterrupt, for a user who does not want to wait.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """SIGINT and SIGTERM as a request to stop, not an exception in the middle of a step.

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
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130) if self.signum is not None else 130

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
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
