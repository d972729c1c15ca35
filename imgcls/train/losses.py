"""The training losses, registered in LOSSES (``loss=cross_entropy|bce|focal|asymmetric``).

A loss is called on a batch's logits and its targets: class indices (N,), multi-hot rows
(N, C) when an image carries several labels, or (N, C) probabilities that MixUp/CutMix
made. Every loss reduces the same way: the terms of an image's classes are summed, and the
images averaged, so softmax cross-entropy and per-label binary cross-entropy have the same
scale per image. Label smoothing (``regularizer=label_smoothing``) smooths the targets
first: towards 1/C over the classes for one label per image, towards 1/2 per label for
several.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgcls.base.errors import UserError
from imgcls.config.options.losses import (
    AsymmetricOptions,
    BceOptions,
    CrossEntropyOptions,
    FocalOptions,
    LossOptions,
    Weighting,
)
from imgcls.data.targets import MULTILABEL
from imgcls.registry import LOSSES

logger = logging.getLogger("imgcls")


def auto_class_weights(counts: Sequence[int], weighting: str, beta: float = 0.999) -> np.ndarray:
    """Per-class weights from the training images per class, averaging 1 over the classes.

    ``inverse_frequency``: n_total / (C * n_c), scikit-learn's ``balanced`` weights.
    ``effective_number``: (1 - beta) / (1 - beta**n_c) (Cui et al. 2019), scaled to sum to C.
    A class without images gets the largest weight of the others (it cannot occur in the
    training loss, but may in a weighted validation loss).
    """
    n = np.asarray(counts, dtype=np.float64)
    present = n > 0
    if not present.any():
        raise UserError("class_weights=auto needs training images: the training split is empty")
    raw = np.zeros_like(n)
    if weighting == Weighting.effective_number.value:
        raw[present] = (1.0 - beta) / (1.0 - np.power(beta, n[present]))
        raw[present] *= present.sum() / raw[present].sum()
    else:
        raw[present] = n.sum() / (present.sum() * n[present])
    raw[~present] = raw[present].max()
    return raw


def class_weights(
    options: LossOptions, counts: Sequence[int], classes: Sequence[str]
) -> torch.Tensor | None:
    """The loss's per-class weights as ``options`` say, or None (all classes weigh 1)."""
    value = options.class_weights
    if value is None:
        return None
    if value == "auto":
        weights = auto_class_weights(counts, options.weighting.value, options.beta)
    else:
        weights = np.asarray(value, dtype=np.float64)
        if len(weights) != len(classes):
            raise UserError(
                f"loss.class_weights has {len(weights)} weights but the dataset has "
                f"{len(classes)} classes ({', '.join(classes)}): give one weight per class, "
                "in this order, or class_weights=auto"
            )
    return torch.tensor(weights, dtype=torch.float32)


class Loss(nn.Module):
    """Base: smooths the targets and applies the class weights; subclasses give the terms."""

    name = "loss"

    def __init__(
        self, task: str, weights: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.task = task
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weights", weights, persistent=False)

    @property
    def multilabel(self) -> bool:
        return self.task == MULTILABEL

    def soft_targets(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(N, C) float targets: one-hot rows for class indices, then label smoothing."""
        if targets.ndim == 1:
            targets = F.one_hot(targets, num_classes).float()
        targets = targets.float()
        alpha = self.label_smoothing
        if alpha > 0:
            uniform = 0.5 if self.multilabel else 1.0 / num_classes
            targets = targets * (1.0 - alpha) + alpha * uniform
        return targets

    def reduce(self, terms: torch.Tensor) -> torch.Tensor:
        """(N, C) per-class terms -> the mean over images of their class-weighted sum."""
        if self.weights is not None:
            terms = terms * self.weights.to(terms.device)
        return terms.sum(dim=1).mean()


class CrossEntropy(Loss):
    """Softmax cross-entropy; per-label binary cross-entropy for multi-label data."""

    name = "cross_entropy"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.multilabel:
            return binary_terms(self, logits, targets)
        if targets.ndim == 1 and self.weights is None:  # torch's fused path, the common case
            return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        soft = self.soft_targets(targets, logits.shape[1])
        return self.reduce(-soft * F.log_softmax(logits, dim=1))


def binary_terms(loss: Loss, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-label binary cross-entropy, summed over labels and averaged over images."""
    soft = loss.soft_targets(targets, logits.shape[1])
    terms = F.binary_cross_entropy_with_logits(logits.float(), soft, reduction="none")
    return loss.reduce(terms)


class BinaryCrossEntropy(Loss):
    """A sigmoid per class: multi-label data, or one-vs-rest for single-label data."""

    name = "bce"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_terms(self, logits, targets)


class Focal(Loss):
    """Focal loss: softmax form for one label per image, torchvision's sigmoid form for
    several (``alpha`` applies to the sigmoid form)."""

    name = "focal"

    def __init__(self, task: str, gamma: float, alpha: float, **kwargs) -> None:
        super().__init__(task, **kwargs)
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import sigmoid_focal_loss

        logits = logits.float()
        soft = self.soft_targets(targets, logits.shape[1])
        if self.multilabel:
            terms = sigmoid_focal_loss(
                logits, soft, alpha=self.alpha, gamma=self.gamma, reduction="none"
            )
            return self.reduce(terms)
        log_p = F.log_softmax(logits, dim=1)
        focus = (1.0 - log_p.exp()).pow(self.gamma)
        return self.reduce(-soft * focus * log_p)


class Asymmetric(Loss):
    """Asymmetric loss (Ridnik et al. 2021, ``AsymmetricLoss`` of their code): positives
    focused by gamma_pos, negatives by gamma_neg after shifting their probability down by
    ``clip`` (so very easy negatives contribute nothing). A sigmoid per class."""

    name = "asymmetric"

    def __init__(
        self, task: str, gamma_pos: float, gamma_neg: float, clip: float, **kwargs
    ) -> None:
        super().__init__(task, **kwargs)
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        soft = self.soft_targets(targets, logits.shape[1])
        p = logits.float().sigmoid()
        p_neg = 1.0 - p
        if self.clip > 0:
            p_neg = (p_neg + self.clip).clamp(max=1.0)
        eps = 1e-8
        terms = soft * torch.log(p.clamp(min=eps)) + (1.0 - soft) * torch.log(p_neg.clamp(min=eps))
        if self.gamma_pos > 0 or self.gamma_neg > 0:
            p_t = p * soft + p_neg * (1.0 - soft)
            gamma = self.gamma_pos * soft + self.gamma_neg * (1.0 - soft)
            terms = terms * (1.0 - p_t).pow(gamma)
        return self.reduce(-terms)


def _weights(
    options: LossOptions, counts: Sequence[int], classes: Sequence[str]
) -> torch.Tensor | None:
    weights = class_weights(options, counts, classes)
    if weights is not None:
        shown = ", ".join(f"{c} {w:.3g}" for c, w in zip(classes, weights.tolist(), strict=True))
        logger.info(f"loss: class weights {shown}")
    return weights


def _builder(make: Callable[..., Loss]) -> Callable[..., Loss]:
    """A registry builder: the options, the data's task and class counts in, the loss out
    (with its class weights, logged, and the run's label smoothing)."""

    def build(
        options: LossOptions,
        task: str,
        counts: Sequence[int],
        classes: Sequence[str],
        label_smoothing: float = 0.0,
    ) -> Loss:
        weights = _weights(options, counts, classes)
        return make(options, task, weights=weights, label_smoothing=label_smoothing)

    return build


LOSSES.register("cross_entropy", CrossEntropyOptions)(
    _builder(lambda options, task, **common: CrossEntropy(task, **common))
)
LOSSES.register("bce", BceOptions)(
    _builder(lambda options, task, **common: BinaryCrossEntropy(task, **common))
)
LOSSES.register("focal", FocalOptions)(
    _builder(lambda options, task, **common: Focal(task, options.gamma, options.alpha, **common))
)
LOSSES.register("asymmetric", AsymmetricOptions)(
    _builder(
        lambda options, task, **common: Asymmetric(
            task, options.gamma_pos, options.gamma_neg, options.clip, **common
        )
    )
)


def validation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The summed, unweighted, unsmoothed loss of a validation batch: softmax cross-entropy
    for class indices, per-label binary cross-entropy (summed over labels) for multi-hot
    rows; comparable across runs whatever training loss they chose."""
    if labels.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
    return F.cross_entropy(logits, labels, reduction="sum")
