"""Register a family under its own name (with ``variant=``) and under each variant's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgcls.config.catalog import FAMILIES
from imgcls.config.options.models import FamilyOptions
from imgcls.registry import MODELS


def register_family(
    family: str, options: type[FamilyOptions]
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: ``builder(options, ...)`` becomes ``family`` and every variant of it.

    All take the family's ``options`` class, which sets ``variant`` to the variant a model is
    named after (``resnet50``) and refuses another, so the builder reads only ``variant``.
    """

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.register(family, options)(builder)
        for variant in FAMILIES[family].variants:
            if variant.name != family:  # alexnet: the family is its only variant
                MODELS.register(variant.name, options)(builder)
        return builder

    return decorator
