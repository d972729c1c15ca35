"""MixUp and CutMix: batch-level mixing that turns labels into target probabilities.

MixUp blends each image with its partner (the batch reversed) by a weight lam drawn from
Beta(alpha, alpha); CutMix pastes a box of the partner whose area is 1 - lam of the image.
The targets are ``lam * onehot(y) + (1 - lam) * onehot(partner y)``, with lam corrected to
the box that was actually pasted (clipped at the borders), so the label weight of the
partner always equals its pasted area. Multi-hot rows (several labels per image) mix the
same way: each label's target is the share of the image that shows it, a soft target for
the per-label binary losses.
"""

from __future__ import annotations

import numpy as np
import torch


class BatchMix:
    """Mixes a batch with probability ``prob``; CutMix instead of MixUp with ``switch_prob``.

    The values' ranges are checked by :class:`imgcls.config.options.augment.MixOptions`."""

    def __init__(
        self,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        stop_epoch: int | None = None,
    ) -> None:
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.stop_epoch = stop_epoch

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def active(self, epoch: int) -> bool:
        """Whether batches of ``epoch`` (1-based) are mixed at all."""
        return self.enabled and (self.stop_epoch is None or epoch <= self.stop_epoch)

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mixed images and (N, num_classes) target probabilities."""
        # One host draw per batch: lam and the coin flips come from a NumPy generator seeded
        # from the loader's generator, so a run's seed fixes them too.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        rng = np.random.default_rng(seed)
        if labels.ndim == 2:  # multi-hot rows: the mixed targets weigh each image's labels
            onehot = labels.to(images.dtype)
        else:
            onehot = torch.nn.functional.one_hot(labels, num_classes).to(images.dtype)
        if rng.random() >= self.prob:
            return images, onehot
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha <= 0 or rng.random() < self.switch_prob
        )
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if use_cutmix:
            images, lam = cutmix(images, lam, rng)
        else:
            images = mixup(images, lam)
        return images, lam * onehot + (1.0 - lam) * onehot.flip(0)


def mixup(images: torch.Tensor, lam: float) -> torch.Tensor:
    return lam * images + (1.0 - lam) * images.flip(0)


def cutmix(
    images: torch.Tensor, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """Paste a box of area about (1 - lam) from the partner; return lam of what stays."""
    h, w = images.shape[-2:]
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch - ch // 2, 0, h)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw - cw // 2, 0, w)
    out = images.clone()
    out[:, :, y1:y2, x1:x2] = images.flip(0)[:, :, y1:y2, x1:x2]
    return out, 1.0 - float((y2 - y1) * (x2 - x1)) / (h * w)
