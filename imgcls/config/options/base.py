"""What every options dataclass shares: the ``name`` field, the schema table, rule helpers.

A component's options dataclass is its schema (Hydra refuses unknown keys and wrong types
while composing) and holds its rules in ``__post_init__``. The rules raise
:class:`~imgcls.base.errors.OptionError` naming the field only (``lr=-1 is invalid: ...``);
the registry adds the config path, since the same class serves ``regularizer.l2`` and others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from omegaconf import MISSING

from imgcls.base.errors import ChoiceError, OptionError

SCHEMAS: dict[tuple[str, str], type] = {}
"""(group, name) -> options dataclass, stored in the ConfigStore as ``schema/<group>/<name>``."""

T = TypeVar("T", bound=type)
E = TypeVar("E", bound=Enum)


@dataclass
class Options:
    """Base of every component's options: ``name`` is the component chosen (the registry key)."""

    name: str = MISSING


def schema(group: str, *names: str) -> Callable[[T], T]:
    """Decorator: the options dataclass of ``group``'s components ``names``; its YAML files
    extend it with ``defaults: [/schema/<group>/<name>@_here_, _self_]``."""

    def decorator(cls: T) -> T:
        for name in names:
            if (group, name) in SCHEMAS:
                raise ValueError(f"schema {group}/{name} is declared twice")
            SCHEMAS[(group, name)] = cls
        return cls

    return decorator


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ``OptionError("<key>=<value> is invalid: <rule>")`` unless ``ok``."""
    if not ok:
        raise OptionError(f"{key}={show(value)} is invalid: {rule}")


def show(value: Any) -> str:
    """A value as the user would have typed it: ``2`` for 2.0, ``[0.9, 1.5]`` for a list."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(show(v) for v in value)}]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def at_least(key: str, value: float, low: float) -> None:
    """``value >= low`` (``at least 1`` for counts, ``>= 0`` for rates)."""
    require(value >= low, key, value, f"it must be at least {low:g}" if low else "use >= 0")


def positive(key: str, value: float) -> None:
    """``value > 0``."""
    require(value > 0, key, value, "it must be positive")


def probability(key: str, value: float, high_open: bool = False) -> None:
    """``value`` in [0, 1], or [0, 1) with ``high_open``."""
    ok = 0 <= value < 1 if high_open else 0 <= value <= 1
    require(ok, key, value, "use [0, 1)" if high_open else "it is a probability in [0, 1]")


def ordered_pair(key: str, value: Sequence[float], low: float, high: float | None = None) -> None:
    """``[low_value, high_value]`` with ``low <= low_value <= high_value (<= high)``."""
    pair = list(value)
    ok = len(pair) == 2 and low <= pair[0] <= pair[1] and (high is None or pair[1] <= high)
    top = "" if high is None else f" and at most {high:g}"
    require(ok, key, value, f"give [low, high] with low <= high, at least {low:g}{top}")


SEED_MAX = 2**32 - 1
"""The largest seed: NumPy's legacy seeding (Optuna's samplers) and scikit-learn's
``random_state`` (the dataset splits) take seeds in [0, 2**32 - 1]."""


def seed(key: str, value: int) -> None:
    """A random seed: an integer in [0, :data:`SEED_MAX`]."""
    require(0 <= value <= SEED_MAX, key, value, f"a seed is an integer in [0, {SEED_MAX}]")


def choice(kind: type[E], key: str, value: Any) -> E:
    """``value`` as a member of the Enum ``kind``: composed options hold the member; options
    built in Python may hold its name or value (``"reflect"``, ``16``), or a member of a
    related Enum of the same name (the early-stopping monitor from the trainer's)."""
    if isinstance(value, kind):
        return value
    text = value.name if isinstance(value, Enum) else str(value)
    for member in kind:
        if text in (member.name, str(member.value)):
            return member
    raise ChoiceError(key, show(value), [str(m.value) for m in kind])
