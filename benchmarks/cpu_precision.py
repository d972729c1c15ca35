"""Training steps per second on the CPU: bf16 autocast against 32-bit floats.

CPUs with native bf16 instructions (AVX512-BF16, AMX) run convolutions in bf16 through oneDNN
much faster than in fp32; on others bf16 is emulated and slower. This measures which holds
on the machine at hand, for a model and batch of your choice (default: the Fashion-MNIST CPU
recipe's ``bncnn`` at batch 128, 1x28x28, channels_last), so ``trainer.precision=bf16`` on a
CPU is chosen from a figure, not a guess.

    python benchmarks/cpu_precision.py [--model bncnn] [--batch 128] [--size 28] [--channels 1]
                                       [--steps 30] [--repeats 5]

Each repeat times ``--steps`` optimizer steps (forward, backward, SGD) in fp32, then the same in
bf16 autocast, on the same random batch, after a few warm-up steps each; the figure is the
median over the repeats of the per-repeat ratio, printed with the load average before and
after.

Last line: bf16_vs_fp32=<bf16 images/s / fp32 images/s>.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import imgcls.app.components  # noqa: F401  (registers every model)
from imgcls.registry import MODELS


def images_per_second(model, optimizer, images, labels, steps: int, bf16: bool) -> float:
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: oneDNN builds its kernels for the shapes
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * images.shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bncnn")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MODELS.build(
        args.model, {}, num_classes=10, in_channels=args.channels, image_size=(args.size,) * 2
    ).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(args.batch, args.channels, args.size, args.size).to(
        memory_format=torch.channels_last
    )
    labels = torch.randint(0, 10, (args.batch,))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model={args.model}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    ratios = []
    for repeat in range(args.repeats):
        fp32 = images_per_second(model, optimizer, images, labels, args.steps, bf16=False)
        bf16 = images_per_second(model, optimizer, images, labels, args.steps, bf16=True)
        ratios.append(bf16 / fp32)
        print(f"repeat {repeat + 1}: fp32 {fp32:,.0f} images/s, bf16 {bf16:,.0f} images/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"per-repeat ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"bf16_vs_fp32={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
