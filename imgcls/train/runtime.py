"""What only the run knows, beside the trainer options the engine trains with: :class:`Runtime`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """The engine's runtime record: the precision resolved for the run's device (``32``,
    ``bf16`` or ``16``; ``trainer.precision=auto`` is resolved by
    :func:`imgcls.train.devices.resolve_precision`), whether a progress bar is drawn (a
    terminal), whether the run is data-parallel (DDP: gradients averaged over the processes)
    and whether this process writes the run directory (rank 0)."""

    precision: str = "32"
    show_progress: bool = False
    distributed: bool = False
    is_main: bool = True
