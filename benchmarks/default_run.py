"""The default job (`make train`) against a hand-written PyTorch loop, in one process.

The bare loop is what a careful engineer would write by hand for the same result: the same
ResNet-8 (He et al. 2016, option-A shortcuts), SGD with Nesterov momentum at lr 0.1, weight
decay 5e-4, a one-epoch linear warmup then cosine decay stepped per batch, label smoothing
0.1, batches of 64, a random ±1 pixel shift per image, 15 epochs, on the same digits split
(imgcls's stratified 70/15/15). Both train on the same device with the same thread count,
seed by seed, alternating which goes first. Training seconds exclude data loading and
evaluation on both sides (imgcls's own figure is the sum of its epochs' training time);
imgcls's whole run (build, per-epoch validation, checkpoints, test, plots) is printed too.

    python benchmarks/default_run.py [--seeds 0 1 2 ...] [--threads N]

Last line: time_ratio=<median over seeds of imgcls training seconds / bare training seconds>.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import imgcls.app.components  # noqa: F401  (registers every component)
from imgcls.app.job import train
from imgcls.config.compose import compose
from imgcls.registry import DATASETS

EPOCHS, BATCH, LR, WEIGHT_DECAY, SMOOTHING = 15, 64, 0.1, 5e-4, 0.1


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return F.relu(out + shortcut)


class ResNet8(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def shift(images: torch.Tensor) -> torch.Tensor:
    """Each image moved by its own random offset in [-1, 1]² (zero padding)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (1, 1, 1, 1))
    views = torch.stack([padded[:, :, y : y + h, x : x + w] for y in range(3) for x in range(3)])
    return views[torch.randint(0, 9, (n,)), torch.arange(n)]


def bare_loop(seed: int) -> tuple[float, float]:
    """Train the hand-written loop; (test accuracy, training seconds)."""
    torch.manual_seed(seed)
    data = DATASETS.build("digits", {})
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x_train = (data.train.images.float() / 255 - mean) / std
    y_train = data.train.labels
    x_test = (data.test.images.float() / 255 - mean) / std
    model = ResNet8(x_train.shape[1], data.num_classes)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    steps = math.ceil(len(x_train) / BATCH)

    def factor(step: int) -> float:  # linear warmup over epoch 1, then cosine to 0
        t = step / steps
        if t < 1:
            return 0.1 + 0.9 * t
        return 0.5 * (1 + math.cos(math.pi * (t - 1) / (EPOCHS - 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    started = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(steps):
            index = order[i * BATCH : (i + 1) * BATCH]
            loss = F.cross_entropy(
                model(shift(x_train[index])), y_train[index], label_smoothing=SMOOTHING
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.inference_mode():
        accuracy = (model(x_test).argmax(1) == data.test.labels).float().mean().item()
    return accuracy, seconds


def imgcls_default(seed: int, root: str) -> tuple[float, float, float]:
    """The default job as `make train` runs it; (test accuracy, training s, whole run s)."""
    cfg = compose([f"seed={seed}", f"output_root={root}"])
    summary = train(cfg).summary
    return summary["test"]["accuracy"], summary["train_seconds"], summary["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("imgcls").setLevel(logging.WARNING)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    bare_acc, bare_s, ours_acc, ours_s, ours_wall, ratios = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as root:
        imgcls_default(0, root)  # warm-up: first-call costs (imports, allocator) on neither side
        for i, seed in enumerate(args.seeds):
            if i % 2 == 0:
                (b_acc, b_s), (o_acc, o_s, o_wall) = bare_loop(seed), imgcls_default(seed, root)
            else:
                (o_acc, o_s, o_wall), (b_acc, b_s) = imgcls_default(seed, root), bare_loop(seed)
            bare_acc.append(b_acc), bare_s.append(b_s), ours_acc.append(o_acc), ours_s.append(o_s)
            ours_wall.append(o_wall)
            ratios.append(o_s / b_s)
            print(
                f"seed {seed}: bare loop test accuracy {b_acc:.4f} in {b_s:.2f} s; "
                f"imgcls {o_acc:.4f} in {o_s:.2f} s (ratio {o_s / b_s:.2f}; whole run {o_wall:.1f} s)"
            )
    print(
        f"mean test accuracy: bare loop {statistics.mean(bare_acc):.4f}, "
        f"imgcls {statistics.mean(ours_acc):.4f} (seeds {' '.join(map(str, args.seeds))})"
    )
    first = [i for i, seed in enumerate(args.seeds) if seed in (0, 1, 2)]
    if len(first) == 3:
        print(
            f"mean test accuracy, seeds 0 1 2: bare loop "
            f"{statistics.mean(bare_acc[i] for i in first):.4f}, "
            f"imgcls {statistics.mean(ours_acc[i] for i in first):.4f}"
        )
    print(
        f"median training seconds: bare loop {statistics.median(bare_s):.2f}, "
        f"imgcls {statistics.median(ours_s):.2f}"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"time_ratio={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
