"""The fast data path: batches are index slices of one uint8 tensor on the training device."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from imgcls.data.augment import Augment
from imgcls.data.sampling import as_weights, draw
from imgcls.data.splits import ImageSet


class DeviceLoader:
    """Iterate over an in-memory :class:`ImageSet` in batches of normalised float images.

    Shuffling and augmentation draw from ``generator`` (on the same device), so a seed fixes
    the data order and every augmentation; the images never leave the device. When the
    augment mixes batches (MixUp/CutMix) in the current epoch (:meth:`set_epoch`), the
    targets are (N, num_classes) probabilities instead of class indices. With ``weights``
    (one per image, :mod:`imgcls.data.sampling`) an epoch is ``len(data)`` images drawn with
    replacement by those weights instead of a permutation.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        channels_last: bool = False,
        num_classes: int | None = None,
        shard: tuple[int, int] = (0, 1),
        weights: torch.Tensor | None = None,
    ) -> None:
        self.data = data
        self.weights = None if weights is None else as_weights(weights, generator)
        # DDP: (rank, world size). Every process makes the same global batch (same order, same
        # augmentation draws) and keeps its rank's share, so a run on N processes sees exactly
        # the batches of a run on one.
        self.rank, self.world_size = shard
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.generator = generator
        self.drop_last = drop_last and len(data) > batch_size
        self.channels_last = channels_last
        self.num_classes = num_classes
        self.epoch = 1
        device = data.images.device
        self.mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1)

    @property
    def device(self) -> torch.device:
        return self.data.images.device

    def set_epoch(self, epoch: int) -> None:
        """Tell the loader which epoch (1-based) comes next: MixUp/CutMix may stop after one."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        if self.drop_last or (self.world_size > 1 and n % self.batch_size < self.world_size):
            return n // self.batch_size  # a last batch too small to give every process a share
        return -(-n // self.batch_size)

    def order(self) -> torch.Tensor:
        """This epoch's sample order (a fresh permutation when shuffling, a weighted draw
        with replacement when the loader has sampling weights)."""
        n = len(self.data)
        device = self.data.images.device
        if self.weights is not None:
            return draw(self.weights, self.generator).to(device)
        if not self.shuffle:
            return torch.arange(n, device=device)
        return torch.randperm(n, generator=self.generator, device=device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        mixing = (
            self.augment is not None
            and self.num_classes is not None
            and self.augment.mixes(self.epoch)
        )
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            labels = self.data.labels[index]
            if self.augment is not None:
                images = self.augment.batch(
                    self.data.images[index], self.generator, index=index, epoch=self.epoch
                )
            else:
                images = self.data.images[index].float().div_(255.0)
            if mixing:
                images, labels = self.augment.mix(images, labels, self.num_classes, self.generator)
            if self.world_size > 1:
                images, labels = (
                    images[self.rank :: self.world_size],
                    labels[self.rank :: self.world_size],
                )
            yield finish(images, self.mean, self.std, self.channels_last), labels


def finish(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """Normalise a 0..1 batch (and optionally switch it to channels-last memory)."""
    images = (images - mean) / std
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
