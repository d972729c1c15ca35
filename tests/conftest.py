"""Shared fixtures: tiny configs that train in about a second, and a CLI runner."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import imgcls.app.components  # noqa: F401  (registers every component, as commands do)

ROOT = Path(__file__).resolve().parents[1]

# The device and precision the tests assume, unless a test is about a GPU (marked ``gpu``):
# on a CUDA machine ``auto`` would pick the GPU and bf16 autocast, and comparisons with fp32
# arithmetic made by hand, or between runs, would no longer hold at their tolerances.
#
# And no figures (trainer.plots=false): drawing them is about half of a tiny run's time. A test
# about plots/*.png or the report's figures adds trainer.plots=true (the last value wins).
CPU = ["trainer.device=cpu", "trainer.precision=32", "trainer.plots=false"]
PLOTS = "trainer.plots=true"

# A run small enough for tests: 1x8x8 synthetic images, a narrow SimpleCNN, two epochs.
# A narrow SimpleCNN for one epoch, for tests whose subject is a dataset, not the model.
SMALL_MODEL = [
    "model=simplecnn",
    "model.widths=[8,16]",
    "model.hidden=32",
    "trainer.epochs=1",
    "trainer.batch_size=16",
    *CPU,
]

TINY = [
    "model=simplecnn",
    "model.widths=[8,16]",
    "model.hidden=32",
    "dataset=synthetic",
    "dataset.num_samples=240",
    "dataset.image_size=8",
    "dataset.channels=1",
    "dataset.num_classes=4",
    "trainer.epochs=2",
    "trainer.batch_size=32",
    *CPU,
]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: without it they are skipped, saying why."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def decode_cache_in_tmp(tmp_path_factory):
    """Runs keep their decode cache (imgcls.data.cache) in a folder of this session, never in
    the user's ~/.cache; the programs the tests start inherit it."""
    before = os.environ.get("IMGCLS_CACHE_DIR")
    os.environ["IMGCLS_CACHE_DIR"] = str(tmp_path_factory.mktemp("decode-cache"))
    yield
    if before is None:
        os.environ.pop("IMGCLS_CACHE_DIR", None)
    else:
        os.environ["IMGCLS_CACHE_DIR"] = before


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests train tiny models, for which one thread beats two (and two processes sharing
    two cores don't oversubscribe them); the programs the tests start get OMP_NUM_THREADS=1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_log_handler_on_a_closed_stream():
    """Hydra, run in-process, points the root logger's console handler at the sys.stdout of
    that moment: an earlier test's capture, closed when that test ended. A later test that
    trains without Hydra would then find 'Logging error' tracebacks in its own stderr."""
    for logger in (logging.getLogger(), logging.getLogger("imgcls")):
        for handler in list(logger.handlers):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                logger.removeHandler(handler)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def cli_env(*, gpu: bool = False, **env: str) -> dict[str, str]:
    """The environment of the programs tests start: this checkout's code, one torch thread,
    and no GPU unless the test is about one (``gpu=True`` keeps the machine's devices).

    Every process of a comparison must use the same thread count: float sums are reduced
    in another order with another count, and exact-resume comparisons would differ.
    """
    environment = {
        k: v for k, v in os.environ.items() if k not in ("IMGCLS_DEBUG", "HYDRA_FULL_ERROR")
    }
    if not gpu:
        environment["CUDA_VISIBLE_DEVICES"] = ""  # trainer.device=auto means the CPU here
    # The code under test is this checkout's, whatever imgcls the virtual environment points to.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")])
    )
    environment.setdefault("OMP_NUM_THREADS", "1")
    environment.update(env)
    return environment


def run_cli(
    args: list[str], cwd: Path, timeout: int = 300, *, gpu: bool = False, **env: str
) -> subprocess.CompletedProcess:
    """Run the real program (``python -m imgcls``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "imgcls", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(gpu=gpu, **env),
    )


# One epoch of TINY: the run a test needs when only its files matter.
ONE_EPOCH = [*TINY, "trainer.epochs=1"]
# A tiny model for dataset=folder runs (RGB 32x32 images by default).
FOLDER_MODEL = [
    "model=simplecnn",
    "model.widths=[8]",
    "model.hidden=16",
    "trainer.epochs=1",
    "trainer.batch_size=4",
    "dataset.stats_images=1",
    *CPU,
]


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and folder (None) under ``root``: what a refused command
    must leave exactly as it was."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }
