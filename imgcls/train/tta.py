"""Test-time augmentation: the logits averaged over named views of each batch.

``trainer.test_tta`` lists the views the run's final test evaluation averages (equal
weights); empty = no TTA. Views of a normalised batch (N, C, H, W):

- ``identity``; ``hflip`` (mirrored left-right);
- ``down_right`` / ``up_left``: translated by one pixel diagonally (reflection padding);
- ``hflip_down_right`` / ``hflip_up_left``: mirrored, then translated.

airbench94's TTA uses all six (it weighs the untranslated pair twice as much as each
translated pair; here every named view counts once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from imgcls.base.errors import unknown_choice


def _shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Content moved by (dy, dx) pixels (|d| <= 1), the border filled by reflection."""
    h, w = images.shape[-2:]
    padded = nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),
    "down_right": lambda x: _shift(x, 1, 1),
    "up_left": lambda x: _shift(x, -1, -1),
    "hflip_down_right": lambda x: _shift(x.flip(-1), 1, 1),
    "hflip_up_left": lambda x: _shift(x.flip(-1), -1, -1),
}


def view(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The view called ``name`` (config values are checked against
    :data:`~imgcls.config.options.trainer.TTA_VIEWS`, which names the same views)."""
    if name not in VIEWS:
        raise unknown_choice("trainer.test_tta view", str(name), list(VIEWS))
    return VIEWS[name]


class TestTimeAugment(nn.Module):
    """``model`` whose logits are the mean over ``views`` of the logits of each view."""

    __test__ = False  # not a pytest class

    def __init__(self, model: nn.Module, views: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.views = list(views)
        self.transforms = [view(name) for name in self.views]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = [self.model(transform(images)).float() for transform in self.transforms]
        return torch.stack(logits).mean(0)


def with_tta(model: nn.Module, views: Sequence[str]) -> nn.Module:
    """``model`` itself without views, else wrapped to average them."""
    return TestTimeAugment(model, views) if views else model
