"""The one generic registry: components are looked up by name, not by import path.

Each config group (model, dataset, ...) has one :class:`Registry` instance. A builder is
registered under a key; :meth:`Registry.build` checks the keyword arguments against the
builder's signature so that a typo fails with a did-you-mean before any work starts.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgcls.base.errors import UserError, did_you_mean, unknown_choice


@dataclass(frozen=True)
class Entry:
    """One registered component: its name and builder (a class or a function). What it does
    is described where users look: the first comment line of its ``conf/<group>/`` file."""

    name: str
    builder: Callable[..., Any]


@dataclass(frozen=True)
class Range:
    """The numbers a keyword accepts: ``Range(0, 1, high_open=True)`` is [0, 1)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


class Registry:
    """Name -> builder mapping for one config group, with validation and did-you-mean.

    ``ranges`` holds the numbers a keyword accepts wherever it appears in the group (every
    model's ``dropout`` is a probability), checked with the types before anything is built.
    """

    def __init__(
        self,
        group: str,
        runtime: frozenset[str] = frozenset(),
        ranges: Mapping[str, Range] | None = None,
    ) -> None:
        self.group = group
        # Arguments imgcls supplies itself (``num_classes`` from the dataset), never the user.
        self.runtime = runtime
        self.ranges = dict(ranges or {})
        self._entries: dict[str, Entry] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``builder`` under ``name`` (a class or a function)."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.group} '{name}' is registered twice")
            self._entries[name] = Entry(name, builder)
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise unknown_choice(self.group, name, self._entries)
        return self._entries[name]

    def check(self, name: str, options: Mapping[str, Any], prefix: str | None = None) -> None:
        """Validate user ``options`` against the builder's signature without building anything."""
        prefix = prefix or self.group
        builder = self.get(name).builder
        params = _parameters(builder)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        hints = _type_hints(builder)
        for key, value in options.items():
            if key in self.runtime:
                raise UserError(
                    f"'{prefix}.{key}' is set by imgcls itself (from the dataset or the run); "
                    f"remove it from the config"
                )
            if key not in params:
                if takes_any:
                    continue
                valid = sorted(
                    k
                    for k, p in params.items()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in self.runtime
                )
                raise UserError(
                    f"unknown key '{prefix}.{key}' for {self.group} '{name}'"
                    f"{did_you_mean(key, valid)} valid keys: {', '.join(valid) or '(none)'}"
                )
            if key in hints and not _matches(value, hints[key]):
                raise UserError(
                    f"{prefix}.{key}={value!r} has the wrong type: expected {_type_name(hints[key])}"
                )
            self._check_range(key, value, prefix)

    def _check_range(self, key: str, value: Any, prefix: str) -> None:
        allowed = self.ranges.get(key)
        numbers = value if isinstance(value, (list, tuple)) else [value]
        numbers = [v for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if allowed is not None and not all(allowed.admits(v) for v in numbers):
            raise UserError(f"{prefix}.{key}={value} is invalid: use {allowed}")

    def build(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        prefix: str | None = None,
        **runtime: Any,
    ) -> Any:
        """Check the user's ``options``, then call the builder with them and ``runtime`` values.

        ``runtime`` holds what imgcls supplies itself (``num_classes`` from the dataset, the
        model's parameters for an optimizer); only arguments the builder accepts are passed.
        """
        options = dict(options or {})
        self.check(name, options, prefix)
        builder = self.get(name).builder
        params = _parameters(builder)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        supplied = {k: v for k, v in runtime.items() if takes_any or k in params}
        return builder(**options, **supplied)


def _parameters(builder: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = dict(inspect.signature(target).parameters)
    params.pop("self", None)
    return params


def _type_hints(builder: Callable[..., Any]) -> dict[str, Any]:
    target = builder.__init__ if inspect.isclass(builder) else builder
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: skip type checks
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Lenient runtime type check: ints pass for floats, lists for sequences, None for Optional."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, Mapping)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) in (list, tuple, Sequence) or hint in (list, tuple):
        return "a list"
    return getattr(hint, "__name__", str(hint))


MODELS = Registry(
    "model",
    runtime=frozenset({"num_classes", "in_channels", "image_size"}),
    ranges={
        "dropout": Range(0, 1, high_open=True),
        **{key: Range(1) for key in ("widths", "hidden", "growth_rate", "depth")},
    },
)
DATASETS = Registry("dataset")
AUGMENTS = Registry("augment")
SCHEDULERS = Registry(
    "scheduler", runtime=frozenset({"optimizer", "steps_per_epoch", "epochs", "monitor_mode"})
)
REGULARIZERS = Registry("regularizer")
OPTIMIZERS = Registry("optimizer", runtime=frozenset({"params"}))
LOGGERS = Registry("logger", runtime=frozenset({"run_dir", "config", "output_root"}))
# Training methods (imgcls.transfer): what they need of the run is supplied by imgcls.
METHODS = Registry(
    "method",
    runtime=frozenset(
        {
            "model",
            "data",
            "device",
            "epochs",
            "steps_per_epoch",
            "batch_size",
            "eval_batch_size",
            "label_smoothing",
            "seed",
            "precision",
        }
    ),
)

REGISTRIES: dict[str, Registry] = {
    r.group: r
    for r in (MODELS, DATASETS, AUGMENTS, SCHEDULERS, REGULARIZERS, OPTIMIZERS, LOGGERS, METHODS)
}
