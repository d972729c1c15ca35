"""Training throughput: the imgcls engine against a bare loop and a model-only ceiling.

In one process, on the same synthetic CIFAR-shaped data (uint8 images held on the device),
with the same model, initial weights, optimizer, schedule, batch size, precision and memory
format:

- engine: ``imgcls.train.engine.Engine`` (validation and checkpoints each epoch, as a run);
- bare: the hand-written loop a researcher would write over the same loader;
- ceiling: the model alone, one batch repeated (no data path at all);
- with ``--compile``: the engine under each torch.compile mode (compilation timed apart);
- with ``--augments``: the engine with those augmentation presets (their cost against none).

Each figure is the median training images/s of the epochs after the first (warm-up: cuDNN
autotuning, caches). TFLOP/s counts a training image as 3x its forward FLOPs; MFU is that
over the device's dense peak (imgcls.train.devices.PEAK_TFLOPS), "-" where unknown (CPU).

    python benchmarks/gpu_throughput.py                       # full size on a GPU
    python benchmarks/gpu_throughput.py --size small          # a few seconds on a CPU
    python benchmarks/gpu_throughput.py --compile default,reduce-overhead,max-autotune
    python benchmarks/gpu_throughput.py --augments basic,strong   # augmentation's cost

Last line: ``engine_vs_bare=<engine images/s / bare images/s>``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app import build
from imgcls.app.job import seed_everything
from imgcls.base.runs import RunDirectory
from imgcls.config.compose import compose
from imgcls.models.facts import count_flops
from imgcls.train.backends import backend_settings
from imgcls.train.devices import autocast, peak_tflops, throughput
from imgcls.train.engine import Engine

SIZES = {  # training images, image side, model variant, batch
    "full": (50_000, 32, "resnet18", 512),
    "small": (512, 8, "resnet8", 64),
}


def config(size: str, batch: int, device: str, augment: str = "none"):
    images, side, variant, _ = SIZES[size]
    on_gpu = device.startswith("cuda")
    return compose(
        [
            "dataset=synthetic",
            f"dataset.num_samples={math.ceil(images / 0.9)}",  # 90 % is the training split
            "dataset.val_fraction=0.05",
            "dataset.test_fraction=0.05",
            f"dataset.image_size={side}",
            "dataset.channels=3",
            "dataset.num_classes=10",
            "model=resnet",
            f"model.variant={variant}",
            f"augment={augment}",
            "regularizer=none",
            "optimizer=sgd",
            "optimizer.lr=0.1",
            "scheduler=cosine",
            "scheduler.warmup_epochs=0",
            f"trainer.batch_size={batch}",
            f"trainer.device={device}",
            f"trainer.precision={'bf16' if on_gpu else '32'}",
            f"trainer.channels_last={str(on_gpu).lower()}",
            "data.loader=memory",
        ]
    )


def median_after_warmup(rates: list[float]) -> float:
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


class FirstBatch:
    """A loader cut to its first batch: validation is not what this benchmark times."""

    def __init__(self, loader) -> None:
        self.loader, self.device = loader, loader.device

    def __iter__(self):
        return itertools.islice(iter(self.loader), 1)

    def __len__(self) -> int:
        return 1


def run_engine(cfg, state, epochs: int, compile_mode: str | None) -> float:
    seed_everything(0)
    parts = build.build_training(cfg, build.place(cfg.trainer))
    parts.model.load_state_dict(state)
    trainer = dataclasses.replace(parts.trainer, epochs=epochs, compile=compile_mode or False)
    with tempfile.TemporaryDirectory() as folder:
        run = RunDirectory(Path(folder))
        run.prepare()
        engine = Engine(
            parts.model,
            parts.optimizer,
            parts.scheduler,
            parts.loaders.train,
            FirstBatch(parts.loaders.val),
            run,
            trainer,
            parts.runtime,
        )
        fit = engine.fit()
    if compile_mode:
        print(f"  compile={compile_mode}: compilation {fit.compile_seconds:.1f} s (apart)")
    return median_after_warmup([row["images_per_second"] for row in fit.history])


def run_bare(cfg, state, epochs: int) -> float:
    """The loop a researcher writes by hand, over the same loader (same data path)."""
    seed_everything(0)
    parts = build.build_training(cfg, build.place(cfg.trainer))
    model, optimizer, scheduler = parts.model, parts.optimizer, parts.scheduler
    model.load_state_dict(state)
    loader, device, precision = parts.loaders.train, parts.place.device, parts.place.precision
    rates = []
    for epoch in range(1, epochs + 1):
        model.train()
        loader.set_epoch(epoch)
        synchronize(device)
        started, seen = time.perf_counter(), 0
        for images, labels in loader:
            with autocast(precision, device):
                loss = F.cross_entropy(model(images).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            seen += labels.shape[0]
        synchronize(device)
        rates.append(seen / (time.perf_counter() - started))
    return median_after_warmup(rates)


def run_ceiling(cfg, state, epochs: int) -> float:
    """The model alone: one batch repeated, as many steps as an epoch has."""
    seed_everything(0)
    parts = build.build_training(cfg, build.place(cfg.trainer))
    model, optimizer = parts.model, parts.optimizer
    model.load_state_dict(state)
    loader, device, precision = parts.loaders.train, parts.place.device, parts.place.precision
    images, labels = next(iter(loader))
    steps = len(loader)
    rates = []
    model.train()
    for _ in range(epochs):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            with autocast(precision, device):
                loss = F.cross_entropy(model(images).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        rates.append(steps * labels.shape[0] / (time.perf_counter() - started))
    return median_after_warmup(rates)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4, help="per side; the first is warm-up")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", default="", help="comma-separated torch.compile modes")
    parser.add_argument(
        "--augments", default="", help="also the engine with these presets, e.g. basic,strong"
    )
    args = parser.parse_args()
    size = args.size or ("full" if args.device.startswith("cuda") else "small")
    batch = args.batch or SIZES[size][3]
    cfg = config(size, batch, args.device)
    seed_everything(0)
    parts = build.build_training(cfg, build.place(cfg.trainer))
    state = copy.deepcopy(parts.model.state_dict())
    device, precision = parts.place.device, parts.place.precision
    flops = count_flops(parts.model, (3, SIZES[size][1], SIZES[size][1]), device)
    peak = peak_tflops(device, precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, {SIZES[size][2]}, {len(parts.data.train)} images {SIZES[size][1]}px, "
        f"batch {batch}, precision {precision}, {args.epochs} epochs each, load "
        f"{os.getloadavg()[0]:.2f}"
    )
    results = {}
    with backend_settings(device, deterministic=False):
        run_ceiling(cfg, state, 2)  # warm-up, not counted: kernels, autotuning, allocator
        results["engine"] = run_engine(cfg, state, args.epochs, None)
        results["bare"] = run_bare(cfg, state, args.epochs)
        results["ceiling"] = run_ceiling(cfg, state, args.epochs)
        for mode in filter(None, args.compile.split(",")):
            results[f"engine compile={mode}"] = run_engine(cfg, state, args.epochs, mode)
        for augment in filter(None, args.augments.split(",")):
            augmented = config(size, batch, args.device, augment)
            results[f"engine augment={augment}"] = run_engine(augmented, state, args.epochs, None)
    for label, rate in results.items():
        figures = throughput(rate, flops, peak)
        mfu = f"{figures['mfu']:.1%}" if figures["mfu"] is not None else "-"
        print(f"{label:32s} {rate:12,.0f} images/s  {figures['tflops']:8.3f} TFLOP/s  MFU {mfu}")
    for label, rate in results.items():
        if "augment=" in label:
            print(f"{label.split()[-1]}_cost={1 - rate / results['engine']:.3f}")
    compiled = [rate for label, rate in results.items() if "compile" in label]
    if compiled:
        print(f"best_compile_vs_eager={max(compiled) / results['engine']:.3f}")
    print(f"engine_vs_bare={results['engine'] / results['bare']:.3f}")


if __name__ == "__main__":
    main()
