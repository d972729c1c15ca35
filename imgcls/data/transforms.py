"""Batched image transforms with a different random draw for every image in the batch.

Every function takes float images in 0..1 of shape (N, C, H, W) on any device, a per-image
boolean ``apply`` mask and the generator to draw from, and returns a new batch. Images whose
mask is False come back unchanged. Parameters follow torchvision's transforms of the same
name, so the per-sample DataLoader path (torchvision v2) means the same thing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def chance(n: int, p: float, g: torch.Generator, device) -> torch.Tensor | None:
    """A per-image mask that is True with probability ``p``; None means every image."""
    if p >= 1.0:
        return None
    return torch.rand(n, generator=g, device=device) < p


def _keep(apply: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return new if apply is None else torch.where(apply[:, None, None, None], new, old)


def _mask(apply: torch.Tensor | None, n: int, device) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool, device=device) if apply is None else apply


def hflip(images: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    return _keep(apply, images.flip(-1), images)


def vflip(images: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    return _keep(apply, images.flip(-2), images)


def crop(
    images: torch.Tensor,
    padding: int,
    apply: torch.Tensor | None,
    g: torch.Generator,
    reflect: bool = False,
) -> torch.Tensor:
    """Pad by ``padding`` (zeros, or the image reflected) and cut each image at its own
    random offset (same shape)."""
    if padding <= 0:
        return images
    n, _, h, w = images.shape
    device = images.device
    pad = (padding, padding, padding, padding)
    padded = F.pad(images, pad, mode="reflect") if reflect else F.pad(images, pad)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=g, device=device)
    if apply is not None:
        offsets = torch.where(apply[None], offsets, torch.full_like(offsets, padding))
    rows = offsets[0, :, None] + torch.arange(h, device=device)  # (n, h)
    cols = offsets[1, :, None] + torch.arange(w, device=device)  # (n, w)
    batch = torch.arange(n, device=device)[:, None, None]
    # Advanced indexing gathers (n, h, w, C); move channels back to dim 1.
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def crop_flip_uint8(
    images: torch.Tensor,
    padding: int,
    crop_apply: torch.Tensor | None,
    hflip_apply: torch.Tensor | None,
    vflip_apply: torch.Tensor | None,
    g: torch.Generator,
    reflect: bool = False,
) -> torch.Tensor:
    """Padded random crop and both flips in one gather on uint8 images (the fast path).

    The same result as :func:`crop` then :func:`hflip` then :func:`vflip`, at a quarter of
    the memory traffic: one index per output pixel, computed from each image's draws.
    """
    n, c, h, w = images.shape
    device = images.device
    reflect = reflect and padding > 0
    if padding > 0:
        if not reflect:
            images = F.pad(images, (padding, padding, padding, padding))
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=g, device=device)
        if crop_apply is not None:
            offsets = torch.where(crop_apply[None], offsets, torch.full_like(offsets, padding))
    else:
        offsets = torch.zeros(2, n, dtype=torch.int64, device=device)
    width = w if reflect else w + 2 * max(padding, 0)
    rows = torch.arange(h, device=device).expand(n, h)
    cols = torch.arange(w, device=device).expand(n, w)
    if vflip_apply is not None:
        rows = torch.where(vflip_apply[:, None], h - 1 - rows, rows)
    if hflip_apply is not None:
        cols = torch.where(hflip_apply[:, None], w - 1 - cols, cols)
    rows, cols = rows + offsets[0, :, None], cols + offsets[1, :, None]
    if reflect:  # coordinates in the padded image -> the image reflected at its borders
        rows, cols = _reflect(rows - padding, h), _reflect(cols - padding, w)
    index = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(images.flatten(2), 2, index).view(n, c, h, w)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Positions outside 0..size-1 mirrored at the border pixel (as F.pad's reflect mode)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def _sample(images: torch.Tensor, theta: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    """Resample with per-image affine maps from output to input coordinates (zeros outside)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _keep(apply, out, images)


def resized_crop(
    images: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    apply: torch.Tensor | None,
    g: torch.Generator,
) -> torch.Tensor:
    """Cut a box of random area fraction and aspect ratio per image, resize it to full size."""
    n, _, h, w = images.shape
    device = images.device
    area = uniform(n, scale[0], scale[1], g, device)
    log_ratio = uniform(n, math.log(ratio[0]), math.log(ratio[1]), g, device)
    aspect = torch.exp(log_ratio)  # width / height
    # Box size as a fraction of the image side; clipped to the image instead of re-drawing.
    frac_w = torch.sqrt(area * aspect * h / w).clamp(max=1.0)
    frac_h = torch.sqrt(area / aspect * w / h).clamp(max=1.0)
    cx = (torch.rand(n, generator=g, device=device) * 2 - 1) * (1 - frac_w)
    cy = (torch.rand(n, generator=g, device=device) * 2 - 1) * (1 - frac_h)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = frac_w, frac_h
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    return _sample(images, theta, apply)


def affine(
    images: torch.Tensor,
    degrees: float,
    translate: tuple[float, float],
    scale: tuple[float, float],
    apply: torch.Tensor | None,
    g: torch.Generator,
) -> torch.Tensor:
    """Rotate by [-degrees, degrees], zoom by ``scale`` and shift by up to ``translate``."""
    n, _, h, w = images.shape
    device = images.device
    angle = uniform(n, -degrees, degrees, g, device) * (math.pi / 180.0)
    zoom = uniform(n, scale[0], scale[1], g, device)
    tx = uniform(n, -translate[0], translate[0], g, device) * 2.0  # normalised units
    ty = uniform(n, -translate[1], translate[1], g, device) * 2.0
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # Inverse map (output -> input) in pixel-aspect-correct normalised coordinates.
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = -sin * w / h, cos
    theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
    theta[:, 1, 2] = -(theta[:, 1, 0] * tx + theta[:, 1, 1] * ty)
    return _sample(images, theta, apply)


def gray(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luminance with the weights torchvision uses (ITU-R 601, rounded)."""
    if images.shape[1] == 1:
        return images
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return 0.2989 * r + 0.587 * g + 0.114 * b


def _factor(
    n: int, amount: float, apply: torch.Tensor | None, g: torch.Generator, device
) -> torch.Tensor:
    factor = uniform(n, max(0.0, 1.0 - amount), 1.0 + amount, g, device)
    if apply is not None:
        factor = torch.where(apply, factor, torch.ones_like(factor))
    return factor[:, None, None, None]


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * images + (1.0 - factor) * other).clamp_(0.0, 1.0)


def color_jitter(
    images: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    apply: torch.Tensor | None,
    g: torch.Generator,
) -> torch.Tensor:
    """Brightness, contrast, saturation, then hue, each with its own factor per image."""
    n, channels = images.shape[:2]
    device = images.device
    if brightness > 0:
        images = (images * _factor(n, brightness, apply, g, device)).clamp_(0.0, 1.0)
    if contrast > 0:
        mean = gray(images).mean(dim=(1, 2, 3), keepdim=True)
        images = _blend(images, mean, _factor(n, contrast, apply, g, device))
    if saturation > 0 and channels == 3:
        images = _blend(images, gray(images), _factor(n, saturation, apply, g, device))
    if hue > 0 and channels == 3:
        shift = uniform(n, -hue, hue, g, device)[:, None, None]
        images = _keep(apply, adjust_hue(images, shift), images)
    return images


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``shift`` (fraction of a turn, broadcast per image).

    The HSV hue rotation of torchvision's ``adjust_hue``, written with element-wise ops only
    (reductions over the 3-channel axis and ``remainder`` are slow on a CPU).
    """
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    inv = 1.0 / torch.where(delta > 0, delta, torch.ones_like(delta))
    hue6 = torch.where(  # hue in sixths of a turn
        maxc == r,
        (g - b) * inv,
        torch.where(maxc == g, (b - r) * inv + 2.0, (r - g) * inv + 4.0),
    )
    hue6 = hue6 + shift * 6.0
    hue6 = hue6 - 6.0 * torch.floor(hue6 * (1.0 / 6.0))  # into [0, 6)
    # HSV -> RGB: channel = v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + hue6) mod 6, v*s = delta.
    k = torch.tensor([5.0, 3.0, 1.0], device=images.device).view(1, 3, 1, 1) + hue6[:, None]
    k = k - 6.0 * (k >= 6.0)
    return maxc[:, None] - delta[:, None] * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def grayscale(images: torch.Tensor, apply: torch.Tensor | None) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    return _keep(apply, gray(images).expand_as(images), images)


def erase(
    images: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    value: float,
    apply: torch.Tensor | None,
    g: torch.Generator,
) -> torch.Tensor:
    """Fill one random rectangle per image (area fraction ``scale``, aspect ``ratio``)."""
    n, _, h, w = images.shape
    device = images.device
    area = uniform(n, scale[0], scale[1], g, device) * (h * w)
    aspect = torch.exp(uniform(n, math.log(ratio[0]), math.log(ratio[1]), g, device))
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(n, generator=g, device=device) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=g, device=device) * (w - ew + 1)).floor()
    rows = torch.arange(h, device=device)[None, :, None]
    cols = torch.arange(w, device=device)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + eh)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + ew)[:, None, None])
        & _mask(apply, n, device)[:, None, None]
    )
    return torch.where(inside[:, None], torch.full_like(images, value), images)
