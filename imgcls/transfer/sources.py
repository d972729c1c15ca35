"""Find and load the checkpoint that a fine-tuning run or a teacher comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcls.base.checkpoint import load_checkpoint
from imgcls.base.errors import UserError
from imgcls.base.record import RunFolder


def checkpoint_path(value: str, key: str) -> Path:
    """A run directory (its ``checkpoints/best.pt``, else ``last.pt``) or a ``.pt`` file."""
    path = Path(value).expanduser()
    if path.is_dir():
        run = RunFolder(path)
        for candidate in (run.best_checkpoint, run.last_checkpoint):
            if candidate.is_file():
                return candidate
        raise UserError(f"{key}={value}: the folder has no checkpoints/best.pt or last.pt")
    if not path.is_file():
        raise UserError(f"{key}={value}: no such run directory or checkpoint file")
    return path


def load_source(value: str, key: str) -> tuple[Path, dict[str, Any]]:
    """Load the checkpoint named by ``key=value``; a foreign file is one UserError line."""
    path = checkpoint_path(value, key)
    try:
        state = load_checkpoint(path)
    except UserError as error:
        raise UserError(f"{key}={value}: {error}") from error
    if not isinstance(state.get("model"), dict):
        raise UserError(f"{key}={value}: {path} holds no model weights")
    return path, state
