"""Where the model looked: the Grad-CAM panel of a finished run (``plots/cam.png`` at the end
of a run with ``trainer.plots=true``, ``cam.png`` of ``imgcls eval ... cam=true``).

The maps are computed in float32 on the CPU from the weights the run's test metrics came from
(the best checkpoint, EMA weights where the run kept them), whatever the run trained with
(a GPU, bf16, channels_last, torch.compile): one forward and backward pass over the 16
images the panel shows. The images are chosen from the probabilities of the evaluation the
panel goes with, so its mistakes are those of the run's (or eval's) metrics.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from imgcls.app.inference import LoadedRun, load_run
from imgcls.base.errors import UserError, one_line
from imgcls.base.record import RunFolder
from imgcls.data.splits import SplitSet
from imgcls.evaluate.cam import CamLayer, find_target_layer, grad_cam
from imgcls.evaluate.cam_figure import choose_extremes, plot_cam_panel
from imgcls.train.engine import Predictions

logger = logging.getLogger("imgcls")


def check_cam(value: bool | str) -> bool:
    """``cam=true|false`` of ``imgcls eval`` as a bool; anything else is one UserError line."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise UserError(f"cam={value} is invalid: expected true or false")
    return text == "true"


def _cpu_model(loaded: LoadedRun) -> torch.nn.Module:
    """The run's model in float32 on the CPU, in eval mode (a copy when it is elsewhere)."""
    model = loaded.model
    parameter = next(model.parameters(), None)
    if parameter is not None and (
        parameter.device.type != "cpu" or parameter.dtype != torch.float32
    ):
        model = copy.deepcopy(model).to("cpu", torch.float32)
    return model.eval()


def _normalised(loaded: LoadedRun, images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW images as the model saw them in training (scaled to [0, 1], normalised)."""
    mean = torch.tensor([float(v) for v in loaded.spec["mean"]]).view(1, -1, 1, 1)
    std = torch.tensor([float(v) for v in loaded.spec["std"]]).view(1, -1, 1, 1)
    return (images.float().div(255.0) - mean) / std


def cam_layer(loaded: LoadedRun) -> CamLayer:
    """The layer Grad-CAM uses for this run's model, found on a blank image of its input size;
    :class:`imgcls.evaluate.cam.CamUnsupported` (one line, naming the model) when there is none."""
    channels = int(loaded.spec["channels"])
    height, width = (int(v) for v in loaded.spec["image_size"])
    blank = torch.zeros(1, channels, height, width)
    family = f"model={loaded.config.model.name}"
    return find_target_layer(_cpu_model(loaded), blank, family)


def write_cam_panel(
    loaded: LoadedRun,
    images: Mapping[int, np.ndarray] | np.ndarray,
    targets: np.ndarray,
    probabilities: np.ndarray,
    path: Path,
) -> Path:
    """The panel of the most confident mistakes and correct answers under ``probabilities``
    (N, classes) of ``images`` (uint8 CHW, indexed by sample) into ``path``."""
    choice = choose_extremes(targets, probabilities)
    shown = [int(i) for i in choice.shown]
    if not shown:
        raise UserError("no images to explain: the split is empty")
    layer = cam_layer(loaded)
    model = _cpu_model(loaded)
    batch = torch.from_numpy(np.stack([np.asarray(images[i]) for i in shown]))
    maps = grad_cam(
        model, layer.module, _normalised(loaded, batch), [int(choice.predicted[i]) for i in shown]
    )
    by_sample = {i: maps[slot].numpy() for slot, i in enumerate(shown)}
    pictures = {i: np.asarray(images[i]) for i in shown}
    return plot_cam_panel(pictures, by_sample, targets, choice, loaded.classes, path, layer.name)


def write_run_cam(
    run_dir: RunFolder | Path, predictions: Predictions, test: SplitSet
) -> Path | None:
    """``plots/cam.png`` of a finished run, from its best checkpoint and the test evaluation's
    ``predictions``; a problem (a model Grad-CAM cannot explain included) is one warning line
    and never fails the run."""
    started = time.perf_counter()
    run = RunFolder.of(run_dir)
    try:
        loaded = load_run(run.path, "best", device="cpu")
        targets = predictions.labels.numpy()
        probabilities = predictions.probabilities.float().numpy()
        choice = choose_extremes(targets, probabilities)
        images = {int(i): test.read(int(i)).cpu().numpy() for i in choice.shown}
        path = write_cam_panel(loaded, images, targets, probabilities, run.cam_png)
    except Exception as error:  # noqa: BLE001 - a figure; the run's results are on disk
        logger.warning(
            f"no Grad-CAM panel: {one_line(error, typed=not isinstance(error, UserError))}"
        )
        return None
    logger.debug(f"Grad-CAM panel: {path} ({time.perf_counter() - started:.2f}s)")
    return path
