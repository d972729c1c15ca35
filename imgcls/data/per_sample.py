"""The augment config as per-sample torchvision v2 transforms, for the DataLoader path.

Same components, same parameters, same order as the batched :class:`~imgcls.data.augment.
Pipeline`, so ``data.loader=dataloader`` and the fast path mean the same thing. Each
component is a ``RandomApply`` with its probability ``p``; colour jitter applies brightness,
contrast, saturation and hue in that fixed order, like the batched version. MixUp/CutMix
are batch-level and run on the device for both paths.
"""

from __future__ import annotations

from typing import Any

import torch

from imgcls.base.errors import UserError
from imgcls.data.augment import POLICIES, Pipeline, policy_transform


def per_sample_transform(augment: Any, size: tuple[int, int], channels: int) -> Any:
    """uint8 (C, H, W) tensor -> augmented float (C, H, W) in 0..1."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if isinstance(augment, Pipeline):
        steps = _steps(augment, size, channels)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if isinstance(augment, Pipeline) and augment.erasing.p > 0:
        e = augment.erasing
        steps.append(v2.RandomErasing(e.p, tuple(e.scale), tuple(e.ratio), value=e.value))
    return v2.Compose(steps)


def _steps(a: Pipeline, size: tuple[int, int], channels: int) -> list[Any]:
    from torchvision.transforms import v2

    steps: list[Any] = []
    if a.alternating_flip:
        raise UserError(
            "augment.alternating_flip needs the in-memory data path: set data.loader=memory"
        )

    def maybe(p: float, *transforms: Any) -> None:
        if p > 0 and transforms:
            steps.append(v2.RandomApply(list(transforms), p=p))

    rc = a.resized_crop
    maybe(rc.p, v2.RandomResizedCrop(size, tuple(rc.scale), tuple(rc.ratio), antialias=True))
    if a.crop.padding > 0:
        mode = a.crop.padding_mode.value
        maybe(a.crop.p, v2.RandomCrop(size, padding=a.crop.padding, padding_mode=mode))
    af = a.affine
    maybe(af.p, v2.RandomAffine(af.degrees, tuple(af.translate), tuple(af.scale)))
    if a.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(a.hflip))
    if a.vflip > 0:
        steps.append(v2.RandomVerticalFlip(a.vflip))
    for key in POLICIES:
        maybe(getattr(a, key).p, policy_transform(key, getattr(a, key)))
    c = a.color
    jitter = [v2.ColorJitter(brightness=c.brightness)] if c.brightness > 0 else []
    jitter += [v2.ColorJitter(contrast=c.contrast)] if c.contrast > 0 else []
    if channels == 3:
        jitter += [v2.ColorJitter(saturation=c.saturation)] if c.saturation > 0 else []
        jitter += [v2.ColorJitter(hue=c.hue)] if c.hue > 0 else []
    maybe(c.p, *jitter)
    if a.grayscale > 0 and channels == 3:
        steps.append(v2.RandomGrayscale(a.grayscale))
    return steps
