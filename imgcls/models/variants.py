"""Register a family under its own name (with ``variant=``) and under each variant's name."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from imgcls.models.catalog import FAMILIES
from imgcls.registry import MODELS


def register_family(family: str) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: ``builder(..., variant=...)`` becomes ``family`` and every variant of it.

    A variant's builder has the family's signature without ``variant``, so the registry's
    keyword and type checks work the same for ``resnet`` and ``resnet50``.
    """

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        MODELS.register(family)(builder)
        for variant in FAMILIES[family].variants:
            if variant.name == family:  # alexnet: the family is its only variant
                continue
            MODELS.register(variant.name)(_fixed(builder, variant.name))
        return builder

    return decorator


def _fixed(builder: Callable[..., Any], variant: str) -> Callable[..., Any]:
    @functools.wraps(builder)
    def build(**options: Any) -> Any:
        return builder(variant=variant, **options)

    signature = inspect.signature(builder)
    build.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "variant"]
    )
    hints = typing.get_type_hints(builder)
    hints.pop("variant", None)
    build.__annotations__ = hints
    del build.__wrapped__  # inspect.signature must see __signature__, not the family's
    return build
