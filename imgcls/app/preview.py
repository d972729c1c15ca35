"""Previewing augmentation: see what the model will see, without training.

Draws ``images`` training images, augments them exactly as a training batch of the first
epoch (the batched fast path, MixUp/CutMix included) and writes a labelled PNG grid to
``outputs/<date>/<time>_preview_<dataset>/preview.png`` (or into ``hydra.run.dir=DIR``, a new
or empty folder, as for ``imgcls train``). Mixed images are titled with their
two largest target weights.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from imgcls.app import build
from imgcls.app.validation import check_seed
from imgcls.base.errors import UserError
from imgcls.base.folders import check_place, claim_run_folder, made_for, remove_made
from imgcls.base.record import RunFolder
from imgcls.base.runs import RunDirectory, new_run_dir
from imgcls.config.compose import compose
from imgcls.config.values import check_finite, component_options
from imgcls.data.loader import DeviceLoader
from imgcls.registry import AUGMENTS, DATASETS


@dataclass
class PreviewConfig:
    """``imgcls preview``'s config (conf/preview.yaml): a dataset, an augment and the grid."""

    dataset: Any = MISSING
    augment: Any = MISSING
    images: int = 32
    columns: int = 8
    seed: int = 0
    output_root: str = "outputs"


def compose_preview(overrides: Sequence[str]) -> DictConfig:
    """The preview config for ``overrides`` (no Hydra settings), checked like a train config."""
    ConfigStore.instance().store(name="preview_schema", node=PreviewConfig)
    cfg = compose(list(overrides), config_name="preview")
    check_finite(cfg)
    check_place(str(cfg.output_root), "output_root")
    check_seed(cfg.seed)
    for group, registry in (("dataset", DATASETS), ("augment", AUGMENTS)):
        name, prefix, options = component_options(cfg, group)[0]
        registry.options(name, options, prefix)
    for key in ("images", "columns"):
        if cfg[key] < 1:
            raise UserError(f"{key}={cfg[key]} is invalid: it must be at least 1")
    return cfg


def preview(cfg: DictConfig, run_dir: Path | None = None) -> Path:
    """Write the grid for a composed preview config into ``run_dir`` (a new folder under
    ``output_root`` if None); return the PNG's path."""

    data = build.build_dataset(cfg)
    augment = build.build_augment(cfg)
    count = min(int(cfg.images), len(data.train))
    pick = np.sort(
        np.random.default_rng(int(cfg.seed)).choice(len(data.train), count, replace=False)
    )
    subset = data.train.subset(pick).materialize()
    generator = torch.Generator().manual_seed(int(cfg.seed))
    loader = DeviceLoader(
        subset,
        count,
        data.mean,
        data.std,
        augment=augment,
        generator=generator,
        num_classes=data.num_classes,
    )
    images, targets = next(iter(loader))
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    images = (images * std + mean).clamp(0, 1)
    titles = [_title(t, data.classes) for t in targets]

    if run_dir is not None:
        run_dir, made = claim_run_folder(run_dir)
    else:
        check_place(str(cfg.output_root), "output_root")
        run_dir = new_run_dir(cfg.output_root, "preview", data.name)
        made = made_for(run_dir) or (run_dir,)
    run = RunDirectory(run_dir)
    path = run.path / "preview.png"
    try:
        run.write_config(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), [])
        _draw(images, titles, int(cfg.columns), path, f"{data.name}, augment={cfg.augment.name}")
    except BaseException:  # no half-made preview stays; only what this call made goes
        shutil.rmtree(RunFolder(run.path).hydra_dir, ignore_errors=True)
        path.unlink(missing_ok=True)
        remove_made(made)
        raise
    return path


def _title(target: Any, classes: list[str]) -> str:
    if target.ndim == 0:
        return classes[int(target)]
    weights, index = target.topk(min(2, len(classes)))
    parts = [
        f"{classes[int(i)]} {float(w):.2f}"
        for w, i in zip(weights, index, strict=True)
        if w > 0.005
    ]
    return "\n".join(parts)


def _draw(images: Any, titles: list[str], columns: int, path: Path, heading: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = images.shape[0]
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for i, axis in enumerate(axes.flat):
        axis.axis("off")
        if i >= count:
            continue
        image = images[i].permute(1, 2, 0).numpy()
        if image.shape[2] == 1:
            axis.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axis.imshow(image, interpolation="nearest")
        axis.set_title(titles[i], fontsize=7)
    figure.suptitle(heading, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
