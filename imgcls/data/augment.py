"""Batched augmentation on the training device, with a different random draw per image.

An augment is a :class:`Pipeline` built from the components in ``conf/augment/<preset>.yaml``
(options: :mod:`imgcls.config.options.augment`). Calling it on float images in 0..1, shape
(N, C, H, W), applies the per-image components in this fixed order: resized_crop, crop,
affine, hflip (or alternating_flip), vflip, autoaugment, randaugment, trivialaugment, augmix,
color, grayscale, erasing. :meth:`Pipeline.mix` then applies MixUp/CutMix to the whole batch.

torchvision's v2 transforms draw one set of parameters per call, so a whole-batch call would
treat every image alike; the geometric and colour components here draw per image in one
batched operation (:mod:`imgcls.data.transforms`). The automatic policies (AutoAugment,
RandAugment, TrivialAugment, AugMix) call torchvision v2 once per image, on the device.
"""

from __future__ import annotations

from typing import Any

import torch

import imgcls.data.transforms as T
from imgcls.config.files import group_options
from imgcls.config.options.augment import AugmentOptions, PaddingMode
from imgcls.data.mixing import BatchMix
from imgcls.registry import AUGMENTS, make_options

POLICIES = ("autoaugment", "randaugment", "trivialaugment", "augmix")


class Augment:
    """Base class: identity, and no batch mixing."""

    mixer: BatchMix | None = None

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 1,
    ) -> torch.Tensor:
        """Augment a uint8 batch; returns float images in 0..1 (what the loaders call).

        ``index`` holds the images' positions in the dataset and ``epoch`` the current epoch
        (1-based), for augmentations that depend on them (``alternating_flip``)."""
        return self(images.float().div_(255.0), generator)

    def mixes(self, epoch: int) -> bool:
        """Whether :meth:`mix` changes the batches of ``epoch`` (1-based)."""
        return self.mixer is not None and self.mixer.active(epoch)

    def mix(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp/CutMix the batch: (N, num_classes) target probabilities replace the labels."""
        if self.mixer is None:
            return images, labels
        return self.mixer(images, labels, num_classes, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Pipeline(Augment):
    """The configured components, applied in a fixed order with per-image random draws.

    Built from its checked options; ``Pipeline(hflip=0.5, crop={"p": 1.0})`` makes them from
    keywords (checked the same way, errors naming ``augment.<key>``)."""

    def __init__(self, options: AugmentOptions | None = None, /, **fields: Any) -> None:
        if options is None:
            options = make_options(AugmentOptions, {"name": "custom", **fields}, "augment")
        self.options = options
        self.resized_crop = options.resized_crop
        self.crop = options.crop
        self.affine = options.affine
        self.hflip = float(options.hflip)
        self.vflip = float(options.vflip)
        self.alternating_flip = bool(options.alternating_flip)
        self.autoaugment = options.autoaugment
        self.randaugment = options.randaugment
        self.trivialaugment = options.trivialaugment
        self.augmix = options.augmix
        self.color = options.color
        self.grayscale = float(options.grayscale)
        self.erasing = options.erasing
        self.mix_options = options.mix
        mixer = BatchMix(**vars(options.mix))
        self.mixer = mixer if mixer.enabled else None
        self._policy_cache: dict[str, Any] = {}

    # -- the per-image components ----------------------------------------------------------
    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 1,
    ) -> torch.Tensor:
        n, device, g = images.shape[0], images.device, generator

        def on(p: float) -> torch.Tensor:
            return T.chance(n, p, g, device)

        if self.resized_crop.p > 0:
            rc = self.resized_crop
            images = T.resized_crop(images, tuple(rc.scale), tuple(rc.ratio), on(rc.p), g)
        if self.crop.p > 0 and self.crop.padding > 0:
            reflect = self.crop.padding_mode is PaddingMode.reflect
            images = T.crop(images, self.crop.padding, on(self.crop.p), g, reflect)
        if self.affine.p > 0:
            a = self.affine
            images = T.affine(images, a.degrees, tuple(a.translate), tuple(a.scale), on(a.p), g)
        if self.alternating_flip:
            images = T.hflip(images, self._alternating(n, device, index, epoch))
        elif self.hflip > 0:
            images = T.hflip(images, on(self.hflip))
        if self.vflip > 0:
            images = T.vflip(images, on(self.vflip))
        return self._after_geometry(images, g)

    @staticmethod
    def _alternating(
        n: int, device: torch.device, index: torch.Tensor | None, epoch: int
    ) -> torch.Tensor:
        index = torch.arange(n, device=device) if index is None else index.to(device)
        return alternating_flips(index, epoch)

    def batch(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        index: torch.Tensor | None = None,
        epoch: int = 1,
    ) -> torch.Tensor:
        """uint8 batch -> augmented float batch; crop and flips fused on uint8 when possible."""
        if self.resized_crop.p > 0 or self.affine.p > 0:
            return self(images.float().div_(255.0), generator, index, epoch)
        n, device, g = images.shape[0], images.device, generator
        padding = self.crop.padding if self.crop.p > 0 else 0
        if padding > 0 or self.hflip > 0 or self.alternating_flip or self.vflip > 0:
            images = T.crop_flip_uint8(
                images,
                padding,
                T.chance(n, self.crop.p, g, device),
                (
                    self._alternating(n, device, index, epoch)
                    if self.alternating_flip
                    else T.chance(n, self.hflip, g, device)
                ),
                T.chance(n, self.vflip, g, device),
                g,
                reflect=self.crop.padding_mode is PaddingMode.reflect,
            )
        return self._after_geometry(images.float().div_(255.0), g)

    def _after_geometry(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Policies, colour, grayscale and erasing (the components after the geometric ones)."""
        n, device = images.shape[0], images.device

        def on(p: float) -> torch.Tensor:
            return T.chance(n, p, g, device)

        for key in POLICIES:
            if getattr(self, key).p > 0:
                images = self._policy(key, images, g)
        if self.color.p > 0:
            c = self.color
            images = T.color_jitter(
                images, c.brightness, c.contrast, c.saturation, c.hue, on(c.p), g
            )
        if self.grayscale > 0:
            images = T.grayscale(images, on(self.grayscale))
        if self.erasing.p > 0:
            e = self.erasing
            images = T.erase(images, tuple(e.scale), tuple(e.ratio), e.value, on(e.p), g)
        return images

    def _policy(self, key: str, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """An automatic policy, one torchvision v2 call per chosen image (uint8, on device)."""
        transform = self._policy_cache.get(key)
        if transform is None:
            transform = self._policy_cache[key] = policy_transform(key, getattr(self, key))
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # torchvision draws from the global CPU generator
            chosen = (torch.rand(images.shape[0]) < getattr(self, key).p).tolist()
            as_uint8 = images.mul(255.0).round_().to(torch.uint8)
            out = [
                transform(img) if pick else img for img, pick in zip(as_uint8, chosen, strict=True)
            ]
        return torch.stack(out).to(images.dtype).div_(255.0)

    def __repr__(self) -> str:
        on = [
            k
            for k in ("resized_crop", "crop", "affine", *POLICIES, "color", "erasing")
            if getattr(self, k).p > 0
        ]
        on += [k for k in ("hflip", "vflip", "grayscale") if getattr(self, k) > 0]
        on += ["alternating_flip"] if self.alternating_flip else []
        if self.mixer is not None:
            on.append("mix")
        return f"Pipeline({', '.join(on) or 'identity'})"


def alternating_flips(index: torch.Tensor, epoch: int) -> torch.Tensor:
    """Alternating flip: image ``i`` is mirrored in epoch ``e`` (1-based) iff bit(i) XOR (e is
    even), bit(i) a fixed pseudo-random bit of its dataset position (Knuth's multiplicative
    hash): each image is mirrored in exactly one of any two consecutive epochs, and about half
    of the images in any one epoch."""
    bit = ((index.long() * 2654435761) >> 31) & 1
    return bit.bool() ^ (epoch % 2 == 0)


def policy_transform(key: str, options: Any) -> Any:
    """The torchvision v2 transform of an automatic policy (also used per sample)."""
    from torchvision.transforms import v2

    if key == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy(options.policy.value))
    if key == "randaugment":
        return v2.RandAugment(num_ops=options.num_ops, magnitude=options.magnitude)
    if key == "trivialaugment":
        return v2.TrivialAugmentWide()
    return v2.AugMix(
        severity=options.severity,
        mixture_width=options.width,
        chain_depth=options.depth,
        alpha=options.alpha,
    )


# Every preset is a Pipeline configured by conf/augment/<name>.yaml, which also describes it
# (`imgcls list augment`); the names are the files' names, so the two cannot drift apart.
for _name in group_options("augment"):
    AUGMENTS.register(_name, AugmentOptions)(Pipeline)
