"""What the imgcls engine costs over a bare, hand-written PyTorch loop.

Both sides train the same model (same initial weights) on the same data with the same batch
size, optimizer, schedule and epochs, validate once per epoch and save the model and
optimizer once per epoch, as a hand-written loop does (``torch.save``). The engine adds what
imgcls gives on top: uint8-to-float normalisation per batch, running metrics, metrics.csv,
RNG states in the checkpoint, atomic and fsync'ed checkpoint writes, and best.pt. The two are run alternately in one process, and the faster
of ``--repeats`` timings of each is compared, since these machines are noisy.

    python benchmarks/overhead.py [--repeats 3] [--epochs 3] [override ...]   (default: the default run)

Last line: overhead_ratio=<engine seconds / bare seconds>.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from imgcls.app import build
from imgcls.app.job import seed_everything
from imgcls.base.runs import RunDirectory
from imgcls.config.compose import compose
from imgcls.config.options.trainer import TrainerOptions
from imgcls.data.loader import DeviceLoader
from imgcls.train.engine import Engine, evaluate


def build_all(cfg, model_state=None):
    seed_everything(cfg.seed)
    data = build.build_dataset(cfg)
    model = build.build_model(cfg, data)
    if model_state is not None:
        model.load_state_dict(model_state)
    optimizer = build.build_optimizer(cfg, model.parameters(), [])
    generator = torch.Generator().manual_seed(cfg.seed)
    train_loader = DeviceLoader(
        data.train, cfg.trainer.batch_size, data.mean, data.std, shuffle=True, generator=generator
    )
    val_loader = DeviceLoader(data.val, cfg.trainer.eval_batch_size, data.mean, data.std)
    scheduler = build.build_scheduler(cfg, optimizer, len(train_loader), cfg.trainer.epochs)
    return data, model, optimizer, scheduler, train_loader, val_loader


def run_engine(cfg, state) -> float:
    _, model, optimizer, scheduler, train_loader, val_loader = build_all(cfg, state)
    with tempfile.TemporaryDirectory() as folder:
        run = RunDirectory(Path(folder))
        run.prepare()
        engine = Engine(
            model,
            optimizer,
            scheduler,
            train_loader,
            val_loader,
            run,
            TrainerOptions(epochs=cfg.trainer.epochs, log_every=cfg.trainer.log_every),
        )
        started = time.perf_counter()
        engine.fit()
        return time.perf_counter() - started


def run_bare(cfg, state, folder: Path) -> float:
    """The loop a researcher would write by hand: pre-normalised tensors, no bookkeeping."""
    data, model, optimizer, scheduler, _, val_loader = build_all(cfg, state)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    images = (data.train.images.float() / 255 - mean) / std
    labels = data.train.labels
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = cfg.trainer.batch_size
    started = time.perf_counter()
    for _ in range(cfg.trainer.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for i in range(0, len(labels), batch):
            index = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        evaluate(model, val_loader)
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, folder / "last.pt"
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = compose([f"trainer.epochs={args.epochs}", *args.overrides])
    _, model, *_ = build_all(cfg)
    state = copy.deepcopy(model.state_dict())
    images = len(build.build_dataset(cfg).train) * cfg.trainer.epochs
    engine_times, bare_times = [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            bare_times.append(run_bare(cfg, state, Path(folder)))
        engine_times.append(run_engine(cfg, state))
        print(f"repeat {repeat + 1}: bare {bare_times[-1]:.2f}s  engine {engine_times[-1]:.2f}s")
    bare, engine = min(bare_times), min(engine_times)
    print(
        f"config: model={cfg.model.name} dataset={cfg.dataset.name} "
        f"batch_size={cfg.trainer.batch_size} epochs={cfg.trainer.epochs} threads={torch.get_num_threads()}"
    )
    print(f"bare loop: {images / bare:.0f} images/s ({bare:.2f}s)")
    print(f"imgcls engine: {images / engine:.0f} images/s ({engine:.2f}s)")
    print(f"overhead_ratio={engine / bare:.3f}")


if __name__ == "__main__":
    main()
