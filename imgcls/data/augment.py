"""Batched augmentation on the training device, with a different random draw per image.

Each augment is a callable ``(images, generator) -> images`` on float images in 0..1,
shape (N, C, H, W). torchvision's v2 transforms draw one set of parameters per call, so a
whole-batch call would treat every image alike; these draw per image instead.
"""

from __future__ import annotations

import torch

from imgcls.errors import UserError
from imgcls.registry import AUGMENTS


class Augment:
    """Base class: identity."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


@AUGMENTS.register("none", "no augmentation")
class NoAugment(Augment):
    pass


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut each image at its own random offset (same shape)."""
    if padding == 0:
        return images
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # (n, h)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # (n, w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indexing gathers (n, h, w, C); move channels back to dim 1.
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)


def random_hflip(
    images: torch.Tensor, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Flip each image left-right with ``probability``."""
    if probability <= 0:
        return images
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < probability
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@AUGMENTS.register("basic", "random crop with zero padding and horizontal flip, per image")
class BasicAugment(Augment):
    def __init__(self, padding: int = 4, hflip: float = 0.5) -> None:
        if padding < 0:
            raise UserError(f"augment.padding={padding} is invalid: it must be >= 0")
        if not 0.0 <= hflip <= 1.0:
            raise UserError(f"augment.hflip={hflip} is invalid: it is a probability in [0, 1]")
        self.padding = padding
        self.hflip = hflip

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = random_crop(images, self.padding, generator)
        return random_hflip(images, self.hflip, generator)


@AUGMENTS.register("shift", "random translation by up to `padding` pixels, no flip (digits, text)")
class ShiftAugment(BasicAugment):
    def __init__(self, padding: int = 1, hflip: float = 0.0) -> None:
        super().__init__(padding, hflip)
