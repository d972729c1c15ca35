"""The DataLoader path: workers read and augment one image at a time (torchvision v2).

For folder datasets larger than the memory budget. :class:`SampleLoader` has the interface
of :class:`~imgcls.data.loader.DeviceLoader` (``len``, iteration over normalised batches
already on the device, ``generator``, ``set_epoch``, ``device``), so the engine does not
know which path it is fed by. The sample order comes from ``generator`` like the fast path;
worker seeds are drawn from it too, so a run's seed fixes the augmentation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from imgcls.base.errors import UserError
from imgcls.data.augment import Augment
from imgcls.data.loader import finish
from imgcls.data.per_sample import per_sample_transform
from imgcls.data.sampling import as_weights, draw
from imgcls.data.splits import SplitSet


class _Samples(torch.utils.data.Dataset):
    def __init__(self, data: SplitSet, transform: Any) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.data.read(index)), self.data.labels[index]


class SampleLoader:
    """Batches from a torch DataLoader with ``num_workers`` workers, moved to ``device``;
    with ``weights``, an epoch's order is a weighted draw with replacement (as in
    :class:`~imgcls.data.loader.DeviceLoader`)."""

    def __init__(
        self,
        data: SplitSet,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        num_classes: int | None = None,
        weights: torch.Tensor | None = None,
    ) -> None:
        self.data = data
        self.weights = None if weights is None else as_weights(weights, generator)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.generator = generator
        self.num_workers = num_workers
        self.drop_last = drop_last and len(data) > batch_size
        self.channels_last = channels_last
        self.num_classes = num_classes
        self.epoch = 1
        self._device = torch.device(device)
        self.mean = torch.tensor(mean, device=self._device, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self._device, dtype=torch.float32).view(1, -1, 1, 1)
        transform = per_sample_transform(augment, data.image_size, data.channels)
        self.dataset = _Samples(data, transform)

    @property
    def device(self) -> torch.device:
        return self._device

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _loader(self) -> torch.utils.data.DataLoader:
        n = len(self.data)
        if self.shuffle or self.weights is not None:
            if self.weights is not None:
                order = draw(self.weights, self.generator)
            else:
                order = torch.randperm(n, generator=self.generator, device=self.generator.device)
            seed = int(
                torch.randint(
                    0, 2**62, (1,), generator=self.generator, device=self.generator.device
                )
            )
        else:
            order, seed = torch.arange(n), 0
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=order.cpu().tolist(),
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            pin_memory=self._device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),  # worker seeds (torch, random)
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mixing = (
            self.augment is not None
            and self.num_classes is not None
            and self.augment.mixes(self.epoch)
        )
        batches = iter(self._loader())
        while True:
            try:
                images, labels = next(batches)
            except StopIteration:
                return
            except UserError as error:  # from a worker: keep the one line, drop the traceback
                raise UserError(_first_message(str(error))) from None
            images = images.to(self._device, non_blocking=True)
            labels = labels.to(self._device, non_blocking=True)
            if mixing:
                images, labels = self.augment.mix(images, labels, self.num_classes, self.generator)
            yield finish(images, self.mean, self.std, self.channels_last), labels


def _first_message(text: str) -> str:
    """The original message of an error re-raised by a DataLoader worker."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        found = re.search(r"(?:UserError|UnreadableImageError): (.*)", line)
        if found:
            return found.group(1)
    return lines[-1] if lines else text
