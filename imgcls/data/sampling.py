"""Per-sample weights for ``data.sampler=balanced``, and the epoch order drawn from them.

Skewed classes leave a model fitting the frequent ones; drawing the training images with
replacement by these weights lets every class be seen about as often. Single-label data is
sampled class-balanced (a draw picks a class uniformly, then one of its images); multi-label
data, whose images carry several classes at once, by repeat factors (Gupta et al., LVIS,
2019), which oversample the images that hold a rare label without the impossible promise of
an even draw per label. An epoch keeps its length (one draw per training image).
"""

from __future__ import annotations

import numpy as np
import torch

from imgcls.data.targets import class_counts, is_multilabel

NONE, BALANCED = "none", "balanced"
SAMPLERS = (NONE, BALANCED)


def class_balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``1 / count[class]`` per image: each class then holds the same share of the total
    weight, so a weighted draw picks a class uniformly and then one of its images."""
    counts = torch.as_tensor(class_counts(labels, num_classes), dtype=torch.float64)
    return 1.0 / counts[labels.long().cpu()]


def repeat_factors(labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Repeat factor per image of (N, C) multi-hot ``labels`` (LVIS):
    ``r_c = max(1, sqrt(threshold / f_c))`` with ``f_c`` the fraction of images holding
    label c, and ``r_i = max`` of ``r_c`` over the image's labels (1 for an image without
    labels). Labels rarer than ``threshold`` are oversampled, by the square root so that a
    very rare label does not make its few images fill the epoch."""
    positive = labels.cpu() > 0.5
    fraction = positive.double().mean(dim=0)
    per_class = torch.sqrt(threshold / fraction.clamp(min=1e-12)).clamp(min=1.0)
    factors = torch.where(positive, per_class.expand_as(positive), torch.ones(()).double())
    return factors.max(dim=1).values if factors.shape[1] else torch.ones(len(labels)).double()


def sample_weights(labels: torch.Tensor, num_classes: int, threshold: float) -> torch.Tensor:
    """The balanced sampler's weight per training image: class-balanced for class indices,
    repeat factors for multi-hot rows."""
    if is_multilabel(labels):
        return repeat_factors(labels, threshold)
    return class_balanced_weights(labels, num_classes)


def as_weights(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``weights`` as :func:`draw` uses them: float32 on the generator's device, moved once."""
    device = generator.device if generator is not None else weights.device
    return weights.to(device=device, dtype=torch.float32)


def draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One epoch's order: ``len(weights)`` indices drawn with replacement by ``weights``,
    from ``generator`` (so a seed fixes it, and every DDP process draws the same order)."""
    return torch.multinomial(weights, len(weights), replacement=True, generator=generator)


def describe(labels: torch.Tensor, num_classes: int, threshold: float) -> str:
    """The line logged as a run starts, saying how the balanced sampler draws."""
    counts = class_counts(labels, num_classes)
    present = counts[counts > 0]
    span = f"{int(present.min())} to {int(present.max())}" if present.size else "none"
    if is_multilabel(labels):
        factors = repeat_factors(labels, threshold).numpy()
        repeated = int(np.count_nonzero(factors > 1.0))
        return (
            f"data: repeat-factor sampling over {num_classes} labels (threshold "
            f"{threshold:g}; {repeated} of {len(factors)} images repeated, up to "
            f"{factors.max(initial=1.0):.2f}x; images per label {span})"
        )
    return (
        f"data: class-balanced sampling over {int(present.size)} classes "
        f"(images per class {span}; {len(labels)} draws with replacement per epoch)"
    )
