"""Loading a finished run for inference: its config, classes, preprocessing and weights.

The checkpoint carries everything (``config``, ``classes``, ``data`` = channels, image size,
mean and std, the task and, for a multi-label run, its tuned thresholds), so a run directory
or a lone checkpoint file is enough to rebuild the model and decide like the run did.
A run trained with ``trainer.ema.decay`` is loaded with its EMA weights: the weights its
validation, its best checkpoint and its test metrics in summary.json were computed with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import imgcls.app.components  # noqa: F401  (registers the models a checkpoint names)
from imgcls.base.checkpoint import inference_state, load_checkpoint
from imgcls.base.errors import UserError, one_line
from imgcls.base.record import RunFolder
from imgcls.config.values import component_options, without_weight_sources
from imgcls.data.targets import MULTICLASS, MULTILABEL, TASKS
from imgcls.data.targets import probabilities as task_probabilities
from imgcls.evaluate.calibration import temperature_from_spec
from imgcls.evaluate.multilabel import thresholds_from_spec
from imgcls.registry import MODELS
from imgcls.train.devices import select_device


@dataclass
class LoadedRun:
    """A model ready for inference and what is needed to feed it like during training."""

    run_dir: Path | None
    checkpoint: Path
    config: DictConfig
    classes: list[str]
    spec: dict[str, Any]
    model: nn.Module
    device: torch.device
    ema: bool = False  # the model holds the run's EMA weights (trainer.ema.decay > 0)
    epoch: int | None = None  # the epoch the checkpoint was saved after

    @property
    def task(self) -> str:
        """``multiclass`` (softmax, one class per image) or ``multilabel`` (a sigmoid per label)."""
        return str(self.spec.get("task", MULTICLASS))

    @property
    def thresholds(self) -> np.ndarray | None:
        """A multi-label run's per-label decision thresholds (tuned on validation and stored
        in best.pt; 0.5 each in a checkpoint without them); None for a single-label run."""
        if self.task != MULTILABEL:
            return None
        return thresholds_from_spec(self.spec, len(self.classes), str(self.checkpoint))

    @property
    def temperature(self) -> float:
        """The temperature the run's logits are divided by (``calibrate=temperature``,
        stored in best.pt); 1.0 for a checkpoint without one."""
        return temperature_from_spec(self.spec, str(self.checkpoint))

    @property
    def name(self) -> str:
        """How tables and folders name this member: its run folder, or the checkpoint file's stem."""
        return self.run_dir.name if self.run_dir is not None else self.checkpoint.stem


def resolve_checkpoint(run: str | Path, checkpoint: str = "best") -> tuple[Path | None, Path]:
    """``(run dir, checkpoint file)`` for ``run=<dir>`` and ``checkpoint=best|last|<file>``."""
    path = Path(run)
    if path.is_file():  # run=<checkpoint file>
        return None, path
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    folder = RunFolder(path)
    if not folder.checkpoints.is_dir() and not folder.summary_json.is_file():
        raise UserError(
            f"{path} is not an imgcls run directory (no summary.json or checkpoints/); "
            "pass run=<run dir> as written by imgcls train"
        )
    if checkpoint in ("best", "last"):
        file = folder.checkpoint(checkpoint)
        if not file.is_file():
            raise UserError(f"{path} has no {checkpoint} checkpoint ({file} not found)")
        return path, file
    file = Path(checkpoint)
    if not file.is_absolute() and not file.exists():
        file = folder.checkpoints / checkpoint  # a file name inside checkpoints/
    if not file.is_file():
        raise UserError(f"checkpoint={checkpoint} not found: use best, last or a .pt file")
    return path, file


def select_inference_device(name: str = "auto") -> torch.device:
    """The device to evaluate or predict on (``auto``: CUDA, then MPS, then CPU)."""
    return select_device(name)


def load_run(run: str | Path, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Rebuild a run's model from its checkpoint and load the weights (``weights_only``)."""

    run_dir, file = resolve_checkpoint(run, checkpoint)
    target = select_inference_device(device)
    state = load_checkpoint(file, map_location="cpu")
    missing = [k for k in ("config", "classes", "data") if k not in state]
    if missing:
        raise UserError(f"{file} lacks {', '.join(missing)}: it was not written by imgcls train")
    spec_keys = ("channels", "image_size", "mean", "std")
    if (
        not isinstance(state["config"], dict)
        or not isinstance(state["config"].get("model"), dict)
        or not isinstance(state["classes"], (list, tuple))
        or not isinstance(state["data"], dict)
        or any(k not in state["data"] for k in spec_keys)
    ):
        raise UserError(
            f"{file} has a config, classes or data entry of the wrong form: it was not "
            "written by imgcls train"
        )
    config = OmegaConf.create(state["config"])
    spec = dict(state["data"])
    classes = [str(c) for c in state["classes"]]
    task = spec.get("task", MULTICLASS)
    if task not in TASKS:
        raise UserError(f"{file} has data.task={task!r}: expected one of {', '.join(TASKS)}")
    name, prefix, options = component_options(config, "model")[0]
    model = MODELS.build(
        name,
        without_weight_sources(options),
        prefix=prefix,
        num_classes=len(classes),
        in_channels=int(spec["channels"]),
        image_size=tuple(int(v) for v in spec["image_size"]),
    )
    weights = inference_state(state)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first = one_line(error, first_line=True)
        raise UserError(f"{file} does not match its model config ({first})") from error
    model.to(target).eval()
    epoch = state.get("epoch")
    return LoadedRun(
        run_dir,
        file,
        config,
        classes,
        spec,
        model,
        target,
        ema=weights is not state["model"],
        epoch=int(epoch) if isinstance(epoch, int) else None,
    )


def normalised_batches(
    model: nn.Module,
    images: torch.Tensor,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    batch_size: int = 512,
) -> Iterator[torch.Tensor]:
    """Batches of uint8 NCHW ``images`` on ``model``'s device, scaled to 0..1 and normalised
    as in training; the model is put in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device).float().div_(255.0)
        yield (batch - m) / s


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    batch_size: int = 512,
) -> np.ndarray:
    """Float64 logits (N, classes) of uint8 NCHW ``images``, normalised as in training (what
    ``eval calibrate=temperature`` fits T on)."""
    outputs = [
        model(batch).float().cpu()
        for batch in normalised_batches(model, images, mean, std, batch_size)
    ]
    return torch.cat(outputs).double().numpy()


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    batch_size: int = 512,
    tta: str = "none",
    task: str = MULTICLASS,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Class probabilities (N, classes) for uint8 NCHW ``images``, on the CPU: a softmax, or
    a sigmoid per label for ``task=multilabel``, of the logits divided by ``temperature``.

    ``tta=flip`` averages the probabilities of each image and its horizontal mirror.
    """
    outputs = []
    for batch in normalised_batches(model, images, mean, std, batch_size):
        probs = task_probabilities(model(batch).float() / temperature, task)
        if tta == "flip":
            flipped = model(batch.flip(3)).float() / temperature
            probs = (probs + task_probabilities(flipped, task)) / 2
        outputs.append(probs.cpu())
    if not outputs:
        return torch.zeros(0, 0)
    return torch.cat(outputs)


def classify(loaded: LoadedRun, images: np.ndarray, tta: str = "none") -> np.ndarray:
    """Probabilities (N, classes) of a run's model for uint8 (N, C, H, W) ``images``: softmax,
    or sigmoid for a multi-label run, of the logits divided by the run's temperature."""
    return predict_probabilities(
        loaded.model,
        torch.from_numpy(images),
        loaded.spec["mean"],
        loaded.spec["std"],
        tta=tta,
        task=loaded.task,
        temperature=loaded.temperature,
    ).numpy()


def check_compatible(
    loaded: LoadedRun, classes: list[str], channels: int, size: tuple, task: str = MULTICLASS
) -> None:
    """A checkpoint can only be scored on data with its classes, input shape and task."""
    if task != loaded.task:
        raise UserError(
            f"{loaded.checkpoint} is a {loaded.task} model but the dataset's labels are "
            f"{task}; evaluate on the data the run was trained on"
        )
    if list(classes) != loaded.classes:
        raise UserError(
            f"the classes of {loaded.checkpoint} ({', '.join(loaded.classes)}) do not match the "
            f"dataset's ({', '.join(classes)}); evaluate on the data the run was trained on"
        )
    expected = (int(loaded.spec["channels"]), *[int(v) for v in loaded.spec["image_size"]])
    if (channels, *size) != expected:
        raise UserError(
            f"{loaded.checkpoint} expects {expected[0]}x{expected[1]}x{expected[2]} images but the "
            f"dataset has {channels}x{size[0]}x{size[1]}"
        )
