"""Domain-adversarial training (DANN, Ganin & Lempitsky 2015).

Source and target batches go through the model together; a domain classifier reads the
backbone's features behind a gradient-reversal layer (GRL). Minimising
``L_task + L_domain`` then trains the domain classifier to tell the domains apart while the
reversed, ``lambda``-scaled gradient trains the features to confuse it: the features see the
gradient of ``L_task - lambda * L_domain``. ``lambda = lambda_max * (2 / (1 + e^(-10 p)) - 1)``
ramps up over training progress ``p`` in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from imgcls.base.errors import UserError
from imgcls.config.options.methods import DannOptions
from imgcls.data.loader import DeviceLoader
from imgcls.data.splits import DataSplits
from imgcls.registry import DATASETS, METHODS
from imgcls.train.engine import evaluate
from imgcls.transfer.heads import FeatureTap
from imgcls.transfer.methods import Method


class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``-lambda``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lam: float) -> Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lam * grad, None


def reverse_gradient(x: Tensor, lam: float) -> Tensor:
    return GradientReversal.apply(x, lam)


def dann_lambda(progress: float, lambda_max: float = 1.0) -> float:
    """The usual ramp 2 / (1 + e^(-10 p)) - 1 from 0 to ~1, times ``lambda_max``."""
    return lambda_max * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class Dann(Method):
    name = "dann"
    resumable = False  # the domain classifier and the ramp position are not checkpointed

    def __init__(
        self,
        model: nn.Module,
        source: DataSplits,
        target: DataSplits,
        *,
        lambda_max: float,
        domain_hidden: int,
        total_steps: int,
        batch_size: int,
        eval_batch_size: int,
        device: torch.device,
        seed: int,
        label_smoothing: float,
        precision: str,
    ) -> None:
        self.tap = FeatureTap(model)
        self.domain = nn.Sequential(
            nn.Linear(self.tap.num_features, domain_hidden), nn.ReLU(), nn.Linear(domain_hidden, 2)
        ).to(device)
        self.lambda_max = lambda_max
        self.total_steps = max(1, total_steps)
        self.label_smoothing = label_smoothing
        self.precision = precision
        self.steps_done = 0
        target = target.materialize()
        # Each domain is normalised with its own channel statistics (the target's are known
        # from its unlabelled images), for training and for the target accuracy alike.
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed) + 1)
        self.target_train = DeviceLoader(
            target.train.to(device),
            batch_size,
            target.mean,
            target.std,
            shuffle=True,
            generator=generator,
            drop_last=True,
        )
        self.target_test = DeviceLoader(
            target.test.to(device), eval_batch_size, target.mean, target.std
        )
        self._batches: Iterator[tuple[Tensor, Tensor]] = iter(())
        self.target_name = target.name

    def modules(self) -> list[nn.Module]:
        return [self.domain]

    def _next_target(self) -> Tensor:
        try:
            return next(self._batches)[0]
        except StopIteration:
            self._batches = iter(self.target_train)
            return next(self._batches)[0]

    def step_loss(
        self, model: nn.Module, images: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        target = self._next_target()
        n = images.shape[0]
        logits = model(torch.cat([images, target]))[:n]
        features = self.tap.features.flatten(1)
        lam = dann_lambda(self.steps_done / self.total_steps, self.lambda_max)
        self.steps_done += 1
        task = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        domain_logits = self.domain(reverse_gradient(features, lam)).float()
        domains = torch.cat(
            [torch.zeros(n, dtype=torch.long), torch.ones(target.shape[0], dtype=torch.long)]
        ).to(images.device)
        domain_loss = F.cross_entropy(domain_logits, domains)
        extras = {
            "task_loss": task.detach(),
            "domain_loss": domain_loss.detach(),
            "domain_accuracy": (domain_logits.argmax(1) == domains).float().mean(),
            "dann_lambda": torch.tensor(lam, device=images.device),
        }
        return task + domain_loss, logits, extras

    def epoch_metrics(self, model: nn.Module) -> dict[str, float]:
        scores = evaluate(model, self.target_test, self.precision)
        return {"target_loss": scores["loss"], "target_accuracy": scores["accuracy"]}

    def final_metrics(self, model: nn.Module) -> dict[str, Any]:
        return {
            "target": {
                "dataset": self.target_name,
                **evaluate(model, self.target_test, self.precision),
            }
        }


def build_target(options: dict[str, Any], source: DataSplits) -> DataSplits:
    """The target domain from ``method.target_dataset`` ({name: ..., options}), checked."""
    options = dict(options)
    name = options.pop("name", None)
    if not name:
        raise UserError(
            "method.target_dataset needs a name, e.g. method.target_dataset.name=digits_shifted"
        )
    target = DATASETS.build(str(name), options, prefix="method.target_dataset")
    if target.channels != source.channels or target.image_size != source.image_size:
        raise UserError(
            f"method.target_dataset={name} has {target.channels}x{target.image_size[0]}x"
            f"{target.image_size[1]} images; the source {source.name} has {source.channels}x"
            f"{source.image_size[0]}x{source.image_size[1]}: they must match"
        )
    if list(target.classes) != list(source.classes):
        raise UserError(
            f"method.target_dataset={name} has classes {target.classes}; the source "
            f"{source.name} has {source.classes}: the label sets must be the same"
        )
    return target


@METHODS.register("dann", DannOptions)
def dann(
    options: DannOptions,
    model: nn.Module,
    data: DataSplits,
    device: torch.device,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    eval_batch_size: int,
    label_smoothing: float,
    seed: int,
    precision: str,
) -> Dann:
    """DANN towards ``options.target_dataset``, over the run's model and data."""
    if not options.target_dataset:
        raise UserError("method=dann needs method.target_dataset (e.g. name: digits_shifted)")
    target = build_target(dict(options.target_dataset), data)
    return Dann(
        model,
        data,
        target,
        lambda_max=options.lambda_max,
        domain_hidden=options.domain_hidden,
        total_steps=epochs * steps_per_epoch,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        device=device,
        seed=seed,
        label_smoothing=label_smoothing,
        precision=precision,
    )
