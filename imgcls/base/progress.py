"""Progress display: a rich bar on a terminal, nothing (the log lines suffice) otherwise."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from types import TracebackType


def is_terminal() -> bool:
    """Whether stdout is a terminal: a progress bar there, plain log lines otherwise (CI)."""
    return sys.stdout.isatty()


class EpochProgress(AbstractContextManager):
    """A transient per-epoch bar; ``advance()`` costs no device synchronisation."""

    def __init__(self, description: str, total: int, enabled: bool) -> None:
        self.description = description
        self.total = total
        self.enabled = enabled
        self._progress = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self) -> None:
        """One batch done."""
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
