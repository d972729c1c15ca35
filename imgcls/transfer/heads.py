"""Split any zoo model into backbone and classifier head, generically.

Every model of the zoo ends in an ``nn.Linear`` classifier (resnet ``fc``, vgg/alexnet/
efficientnet/densenet/simplecnn/lenet ``classifier[-1]``): the head is the last Linear module
registered, and the features feeding it are caught by a forward pre-hook on that module.
"""

from __future__ import annotations

from torch import Tensor, nn

from imgcls.base.errors import UserError


def split_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The qualified name and module of the model's classifier head (its last nn.Linear)."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no nn.Linear classifier head to replace")
    return linears[-1]


def head_parameter_names(model: nn.Module) -> set[str]:
    name, head = split_head(model)
    return {f"{name}.{key}" for key, _ in head.named_parameters()}


class FeatureTap:
    """Keeps the input of the head from the last forward pass: the backbone's features."""

    def __init__(self, model: nn.Module) -> None:
        _, self.head = split_head(model)
        self.features: Tensor | None = None
        self._handle = self.head.register_forward_pre_hook(self._catch)

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def _catch(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.features = args[0]

    def remove(self) -> None:
        self._handle.remove()
