"""Checkpoints: atomic writes, RNG state capture, and safe loading (``weights_only=True``)."""

from __future__ import annotations

import copy
import os
import random
import re
import shutil
import time
import warnings
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgcls.base.atomic import atomic_write, vanished
from imgcls.base.errors import UserError, one_line

CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "ema",
    "epoch",
    "step",
    "rng",
    "best",
    "classes",
    "config",
)


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a run draws from, as types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back the Python, NumPy, torch (and CUDA) random states a checkpoint saved, so a resumed
    run draws what a straight run would have.
    """
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def check_resumable(state: dict[str, Any], path: Path) -> None:
    """A loaded checkpoint that a run can continue from: whole counts and random states
    that can be restored (tried here, then the current ones put back), else a one-line
    UserError naming ``path`` before anything of the run is written."""
    for key in ("epoch", "step"):
        value = state.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UserError(f"{path} is damaged: its '{key}' is {value!r}, not a count")
    current = rng_state(torch.Generator())
    try:
        restore_rng(state["rng"], torch.Generator())
    except Exception as error:  # noqa: BLE001 - any shape of damage is the same message
        raise UserError(
            f"{path} is damaged: its random-number states cannot be restored "
            f"({one_line(error, typed=True, limit=120)})"
        ) from error
    finally:
        restore_rng(current, torch.Generator())


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary file and a rename: never a half-written checkpoint.

    The folder is not made again if it is gone (a run folder deleted during the run is a
    one-line error), and a full disk is an OSError naming ``path``, its temporary removed.
    """
    atomic_write(path, lambda handle: torch.save(state, handle), binary=True, make_parents=False)


def snapshot(value: Any) -> Any:
    """A deep copy of a state (tensors cloned to the CPU) that training can no longer change."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    return copy.deepcopy(value)


class BackgroundCheckpointer:
    """Writes checkpoints on a worker thread so that training does not wait for the disk.

    At most one write is in flight: :meth:`submit` waits for the previous one first, and
    :meth:`wait` must be called before the files are read (the engine does at the end and on
    errors). Each write is still atomic, so a crash leaves the previous checkpoint whole.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None
        self.write_seconds = 0.0  # on the worker thread: serialising and writing the files
        self.blocked_seconds = 0.0  # on the training thread: snapshots and waiting for writes

    def submit(
        self,
        path: Path,
        state: dict[str, Any],
        also: Path | Sequence[Path] | None = None,
        remove: Sequence[Path] = (),
    ) -> None:
        """Write a snapshot of ``state`` to ``path``, hard-link it as ``also``, delete ``remove``."""
        self.wait()
        started = time.perf_counter()
        frozen = snapshot(state)
        links = [also] if isinstance(also, Path) else list(also or ())
        self.blocked_seconds += time.perf_counter() - started

        def write() -> None:
            write_started = time.perf_counter()
            save_checkpoint(path, frozen)
            for link in links:
                link_atomically(path, link)
            for old in remove:
                old.unlink(missing_ok=True)
            self.write_seconds += time.perf_counter() - write_started

        self._pending = self._executor.submit(write)

    def wait(self) -> None:
        """Block until the write in flight is on disk; re-raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            started = time.perf_counter()
            try:
                pending.result()
            finally:
                self.blocked_seconds += time.perf_counter() - started

    def close(self) -> None:
        """Wait for the write in flight, then stop the writer thread."""
        try:
            self.wait()
        finally:
            self._executor.shutdown(wait=True)


def link_atomically(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` without copying (a copy where links fail).

    Safe because ``source`` is only ever replaced by a rename, which leaves this inode alone.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except FileNotFoundError as error:
        if not target.parent.is_dir():
            raise vanished(target) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)  # a copy cut short by a full disk is not left behind
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without running code from it; a bad file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    state = safe_load(path, map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path} is not an imgcls checkpoint: it has no 'model' entry")
    return state


ZIP_MAGIC = b"PK\x03\x04"


def safe_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code.

    Torch's own messages for a bad file suggest loading with ``weights_only=False`` (which
    would run whatever the file holds) or say only ``[Errno 22]``; this says what is wrong.
    Any failure is the file's: damaged bytes make torch's unpickler raise errors of many
    types (an IndexError from a garbage opcode, for one).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's legacy-format notes are not for users
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged or hostile file can raise anything
        raise UserError(f"{path} {describe_load_error(path, error)}") from error


def describe_load_error(path: Path, error: BaseException) -> str:
    """Why a file failed to load, in imgcls's words (the sentence after the path)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as os_error:
        return f"cannot be read ({os_error.strerror or os_error})"
    if size == 0:
        return "is empty (0 bytes): not a checkpoint"
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        return (
            f"is truncated or damaged: a checkpoint archive whose end is missing ({size} bytes); "
            "copy it again or use another checkpoint"
        )
    text = " ".join(str(error).split())
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)  # torch names the refused global
    if unsafe:
        return (
            f"holds a Python object ({unsafe.group(1)}) beyond tensors and plain values; "
            "imgcls loads checkpoints with weights_only=True and never runs code from a file"
        )
    if head != ZIP_MAGIC:
        return f"is not a PyTorch checkpoint ({size} bytes of another format, or damaged)"
    return "is a damaged checkpoint archive (its contents cannot be read)"


def inference_state(state: dict[str, Any]) -> dict[str, Any]:
    """The weights to evaluate: the EMA weights when the run kept an average, else ``model``."""
    ema = state.get("ema")
    return ema["model"] if isinstance(ema, dict) and "model" in ema else state["model"]
