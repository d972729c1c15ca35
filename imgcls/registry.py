"""The one generic registry: components are looked up by name, not by import path.

Each config group (model, dataset, ...) has one :class:`Registry`. A component is registered
under its name with its builder and its options dataclass (``imgcls/config/options/``). The
options class is the component's schema: Hydra checks every key and type against it while
composing, and its ``__post_init__`` holds the component's rules once, raising
:class:`~imgcls.base.errors.OptionError`; :func:`make_options` adds the config key in front.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imgcls.base.errors import ChoiceError, OptionError, UserError, did_you_mean, unknown_choice


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, its builder (a class or a function called as
    ``builder(options, **runtime)``) and its options dataclass. What it does is described
    where users look: the first comment line of its ``conf/<group>/`` file."""

    name: str
    builder: Callable[..., Any]
    options: type


class Registry:
    """Name -> (builder, options class) for one config group, with did-you-mean."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str, options: type | None = None
    ) -> Callable[[Callable[..., Any]], Any]:
        """Decorator: register ``builder`` under ``name`` with its ``options`` dataclass."""
        if not dataclasses.is_dataclass(options):
            raise TypeError(f"{self.group} '{name}': options must be a dataclass, not {options}")

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.group} '{name}' is registered twice")
            self._entries[name] = Entry(name, builder, options)
            return builder

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        """The registered entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        """The entry for ``name``; an unknown name is a UserError with a did-you-mean."""
        if name not in self._entries:
            raise unknown_choice(self.group, name, self._entries)
        return self._entries[name]

    def options(self, name: str, values: Any = None, prefix: str | None = None) -> Any:
        """``name``'s options object from ``values`` (a mapping of its fields, or already
        the options object), its rules checked: a bad value names ``<prefix>.<key>``."""
        entry = self.get(name)
        if isinstance(values, entry.options):
            return values
        fields = dict(values or {})
        fields.setdefault("name", name)
        return make_options(entry.options, fields, prefix or self.group)

    def build(self, name: str, options: Any = None, *, prefix: str | None = None, **runtime: Any):
        """Build ``name`` from its options (see :meth:`options`) and ``runtime`` values.

        ``runtime`` holds what imgcls supplies itself (``num_classes`` from the dataset, the
        model's parameters for an optimizer); only the keywords the builder takes are passed.
        """
        entry = self.get(name)
        made = self.options(name, options, prefix)
        accepted = _keywords(entry.builder)
        supplied = {k: v for k, v in runtime.items() if accepted is None or k in accepted}
        return entry.builder(made, **supplied)


def make_options(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    """An instance of the options dataclass ``cls`` from plain ``values``; nested dataclass
    fields are made first with their own key, so that every error names the full key.

    Unknown keys are refused here too (Hydra already refuses them while composing; this
    covers options given from Python)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        valid = sorted(known)
        hint = did_you_mean(unknown[0], valid).replace("'", f"'{prefix}.", 1) or ";"
        raise UserError(
            f"unknown config key '{prefix}.{unknown[0]}'{hint} valid keys under {prefix}: "
            f"{', '.join(valid)}"
        )
    hints = typing.get_type_hints(cls)  # resolves string annotations
    made: dict[str, Any] = {}
    for key, value in values.items():
        kind = hints.get(key)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            value = make_options(kind, value, f"{prefix}.{key}")
        made[key] = value
    try:
        return cls(**made)  # __post_init__ checks the rules and turns choices into members
    except ChoiceError as error:
        raise unknown_choice(f"{prefix}.{error.key}", str(error.value), error.choices) from error
    except OptionError as error:
        raise UserError(f"{prefix}.{error}") from error


def _keywords(builder: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments ``builder`` takes after its options, or None for ``**kwargs``."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = list(inspect.signature(target).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


MODELS = Registry("model")
DATASETS = Registry("dataset")
AUGMENTS = Registry("augment")
SCHEDULERS = Registry("scheduler")
REGULARIZERS = Registry("regularizer")
OPTIMIZERS = Registry("optimizer")
LOGGERS = Registry("logger")
METHODS = Registry("method")  # training methods (imgcls.transfer)
LOSSES = Registry("loss")

REGISTRIES: dict[str, Registry] = {
    r.group: r
    for r in (
        MODELS,
        DATASETS,
        AUGMENTS,
        SCHEDULERS,
        REGULARIZERS,
        OPTIMIZERS,
        LOGGERS,
        METHODS,
        LOSSES,
    )
}
"""Every registry by its config group."""
