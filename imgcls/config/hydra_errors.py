"""Hydra's and OmegaConf's composition errors turned into one clear line each.

The errors carry what is needed as attributes (the missing config file, the full key, the
value, the schema dataclass whose field refused it), so the line is made from those, and the
expected type from the schema's own annotations. Only Hydra's override-grammar errors and its
"ambiguous value" (a sweep without ``-m``) are recognised by their text.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from enum import Enum
from typing import Any

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.basecontainer import BaseContainer
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    ConfigTypeError,
    InterpolationKeyError,
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    InterpolationValidationError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    UnsupportedInterpolationType,
)

from imgcls.base.errors import UserError, did_you_mean, unknown_choice
from imgcls.config.files import group_options

# (parent key, overrides, rejected key) -> the keys that exist at the parent key
ValidKeys = Callable[[str, list[str], str], list[str]]


def translate_compose_error(
    error: Exception, overrides: list[str], valid_keys: ValidKeys
) -> UserError:
    """One clear line for a Hydra composition error: unknown option, unknown key, wrong type."""
    cause = error.__cause__ or error.__context__
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        group = group.rsplit("/", 1)[-1]
        return unknown_choice(group, option, group_options(group))
    if isinstance(error, OverrideParseException):
        return UserError(f"cannot parse the override(s) {' '.join(overrides)}: {_one_line(error)}")
    unknown = isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or (
        isinstance(cause, ConfigTypeError) and "not in struct" in str(cause)
    )
    if unknown and cause.full_key and "_dummy_" not in str(cause.full_key):
        return unknown_key_error(str(cause.full_key), overrides, valid_keys)
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        kind = _field_type(getattr(cause, "object_type", None), str(cause.key))
        if isinstance(kind, type) and issubclass(kind, Enum) and not _is_container(cause.value):
            return unknown_choice(str(cause.full_key), str(cause.value), kind.__members__)
        expected = _expected(kind)
        if expected is not None:
            return UserError(
                f"{cause.full_key}={cause.value} has the wrong type: expected {expected}"
            )
        return UserError(f"{cause.full_key}: {_one_line(cause).split(' full_key')[0]}")
    text = _one_line(error)
    if text.startswith("Ambiguous value for argument"):
        argument = text.split("'")[1] if "'" in text else text
        return UserError(f"'{argument}' is a sweep: add -m (--multirun) to run it")
    return UserError(text.split(" full_key")[0] or _one_line(cause))


def _field_type(schema: Any, key: str) -> Any:
    """The type of the schema dataclass's field ``key`` (``Optional[X]``: X); None if unknown."""
    try:
        kind = typing.get_type_hints(schema).get(key)
    except Exception:  # not a dataclass, or annotations that do not resolve
        return None
    if typing.get_origin(kind) is typing.Union:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _is_container(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, ListConfig, DictConfig))


def _expected(kind: Any) -> str | None:
    """What a field of type ``kind`` accepts, in words; None if unknown."""
    names = {int: "an integer", float: "a number", bool: "a boolean (true or false)"}
    names[str] = "a string"
    if kind in names:
        return names[kind]
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(kind.__members__)
    if typing.get_origin(kind) in (list, tuple):
        return "a list"
    if typing.get_origin(kind) is dict:
        return "a mapping"
    return None


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) if error is not None else ""


def unknown_key_error(full_key: str, overrides: list[str], valid_keys: ValidKeys) -> UserError:
    """``optimizer.lrr`` -> unknown key, with a did-you-mean from the keys that exist there.

    The valid keys are those of the component the overrides chose (``model=simplecnn``
    lists simplecnn's keys, not the default model's), and the rejected key is never offered.
    """
    parent_key, _, leaf = full_key.rpartition(".")
    base = [k for k in valid_keys(parent_key, overrides, full_key) if k != leaf]
    hint = did_you_mean(leaf, base).replace("'", f"'{parent_key}." if parent_key else "'", 1) or ";"
    where = f" under {parent_key}" if parent_key else ""
    valid = f" valid keys{where}: {', '.join(base)}" if base else ""
    return UserError(f"unknown config key '{full_key}'{hint}{valid}")


def interpolation_error(error: OmegaConfBaseException, cfg: Any) -> UserError:
    """One line for a value whose ``${...}`` does not resolve, naming the key that holds it.

    An unset environment variable, a reference to a key that does not exist, a cycle
    (``seed=${seed}``), an unknown resolver, a result of the wrong type, or a key left
    ``???`` are the user's mistakes, said in their terms; OmegaConf's own text is the rest.
    """
    key = str(getattr(error, "full_key", "") or "")
    raw = raw_value(cfg, key) if key else None
    where = f"{key}={raw}" if raw is not None else key or "a config value"
    text = _one_line(error).split(" full_key:")[0]
    if isinstance(error, MissingMandatoryValue) and not isinstance(
        error, InterpolationToMissingValueError
    ):
        return UserError(f"{key}=??? has no value: give one ({key}=<value>)")
    if "Environment variable '" in text:
        name = text.split("Environment variable '", 1)[1].split("'", 1)[0]
        return UserError(
            f"{where}: the environment variable {name} is not set; set it, or give a "
            f"default: ${{oc.env:{name},<default>}}"
        )
    if "Recursive interpolation" in text:
        return UserError(f"{where} refers back to itself (an interpolation cycle): give a value")
    if isinstance(error, InterpolationKeyError):
        missing = text.split("'")[1] if "'" in text else text
        return UserError(
            f"{where} refers to '{missing}', which is not a config key{_near(cfg, missing)}"
        )
    if isinstance(error, UnsupportedInterpolationType):
        name = text.rsplit(" ", 1)[-1]
        return UserError(
            f"{where} uses the unknown resolver '{name}'{did_you_mean(name, resolvers()) or ';'} "
            f"available: {', '.join(resolvers())}"
        )
    if isinstance(error, InterpolationToMissingValueError):
        return UserError(f"{where} refers to a key that has no value (???): give it one")
    if "HydraConfig was not set" in text:
        return UserError(f"{where}: ${{hydra:...}} resolves only while imgcls train composes a run")
    if isinstance(error, InterpolationValidationError):
        return UserError(f"{where} has the wrong type: {text.split(': ', 1)[-1]}")
    if isinstance(error, InterpolationResolutionError) and " raised while resolving" in text:
        text = text.split(" raised while resolving interpolation: ", 1)[-1]
    return UserError(f"{where} cannot be resolved: {text}")


def raw_value(cfg: Any, key: str) -> str | None:
    """The value at the dotted ``key`` as written, interpolations unresolved; None if absent."""
    node: Any = (
        OmegaConf.to_container(cfg, resolve=False)
        if isinstance(cfg, (DictConfig, ListConfig))
        else cfg
    )
    for part in key.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return str(node) if not isinstance(node, (dict, list)) else None


def resolvers() -> list[str]:
    """The names of the resolvers OmegaConf knows (``oc.env``, ``hydra``, ``now``, ...)."""
    return sorted(BaseContainer._resolvers)


def _near(cfg: Any, missing: str) -> str:
    """`` — did you mean 'optimizer.momentum'?`` from the keys beside the missing one."""
    parent, _, leaf = missing.rpartition(".")
    try:
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # an unresolvable parent: no hint
        return ""
    if not isinstance(node, DictConfig):
        return ""
    hint = did_you_mean(leaf, [str(k) for k in node])
    return hint.replace("'", f"'{parent}." if parent else "'", 1)
