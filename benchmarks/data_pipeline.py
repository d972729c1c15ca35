"""Images per second of the fast data path against a per-sample DataLoader pipeline.

Both sides make shuffled, augmented, normalised float batches of 50,000 synthetic 32x32x3
uint8 images with the same augmentation — random crop with 4-pixel padding, horizontal
flip, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) — and no model:

  (a) the fast path: one uint8 tensor on the device, index-slice batches, batched
      per-image augmentation (imgcls.data.loader.DeviceLoader);
  (b) a torch DataLoader with per-sample torchvision v2 transforms
      (imgcls.data.sample_loader.SampleLoader), the faster of 0 and 2 workers.

    python benchmarks/data_pipeline.py [--images 50000] [--batch-size 256] [--repeats 5]
                                       [--batches 40] [--threads 1] [--device cpu]

Each repeat times (a) and (b) one after the other on ``--batches`` batches (a fresh shuffle
each); the figure is the median over the repeats of the per-repeat ratio, printed with the
load average before and after, since these machines are shared and noisy.

``--threads`` sets torch's intra-op threads in the main process (DataLoader workers use one
each anyway). It is 1 by default: on a shared 2-core machine two spinning OpenMP threads per
process collapse under load, which would distort both sides.

Last line: speedup=<(a) images/s / (b) images/s>.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from imgcls.data.augment import Pipeline
from imgcls.data.loader import DeviceLoader
from imgcls.data.sample_loader import SampleLoader
from imgcls.data.splits import ImageSet

AUGMENT = {
    "crop": {"p": 1.0, "padding": 4},
    "hflip": 0.5,
    "color": {"p": 1.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
}
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def images_per_second(loader, limit: int) -> float:
    """One pass over ``limit`` batches (a new shuffle and new augmentation draws)."""
    seen = 0
    started = time.perf_counter()
    for i, (images, _) in enumerate(loader):
        seen += images.shape[0]
        if i + 1 >= limit:
            break
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches timed per pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    data = ImageSet(
        torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8),
        torch.randint(0, 10, (args.images,)),
    )
    augment = Pipeline(**AUGMENT)
    generator = torch.Generator(device=device).manual_seed(0)
    fast = DeviceLoader(
        data.to(device),
        args.batch_size,
        MEAN,
        STD,
        shuffle=True,
        augment=augment,
        generator=generator,
        num_classes=10,
    )
    slow = {
        workers: SampleLoader(
            data,
            args.batch_size,
            MEAN,
            STD,
            device=device,
            shuffle=True,
            augment=augment,
            generator=torch.Generator().manual_seed(0),
            num_workers=workers,
            num_classes=10,
        )
        for workers in (0, 2)
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    images_per_second(fast, 3)  # warm-up
    ratios = []
    for repeat in range(1, args.repeats + 1):
        a = images_per_second(fast, args.batches)
        b = {workers: images_per_second(loader, args.batches) for workers, loader in slow.items()}
        best = max(b, key=b.get)
        ratios.append(a / b[best])
        print(
            f"repeat {repeat}: (a) fast path {a:,.0f} images/s; (b) DataLoader, per-sample "
            f"torchvision v2: {b[0]:,.0f} (0 workers), {b[2]:,.0f} (2 workers); "
            f"ratio {ratios[-1]:.1f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"speedup={statistics.median(ratios):.1f}")


if __name__ == "__main__":
    main()
