"""``key=value`` arguments of ``imgcls eval`` and ``imgcls predict`` (no Hydra, no torch).

Values may be lists in Hydra's bracket form: ``run=[a,b]``. Unknown keys fail with a
did-you-mean naming the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imgcls.base.errors import UserError, did_you_mean


def parse_value(text: str) -> str | list[str]:
    """``[a,b]`` -> ``["a", "b"]``; anything else stays a string."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [item.strip() for item in text[1:-1].split(",") if item.strip()]
    return text


def parse_arguments(
    args: Sequence[str], keys: Mapping[str, str], command: str, prefixes: Sequence[str] = ()
) -> dict[str, str | list[str]]:
    """Parse ``key=value`` pairs; ``keys`` maps each valid key to a one-line help text.

    Keys starting with one of ``prefixes`` (``dataset.``) are passed through as given.
    """
    parsed: dict[str, str | list[str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UserError(
                f"imgcls {command}: expected key=value, got '{arg}'; valid keys: {', '.join(keys)}"
            )
        if key not in keys and not key.startswith(tuple(prefixes)):
            raise UserError(
                f"unknown {command} key '{key}'{did_you_mean(key, keys) or ';'} "
                f"valid keys: {', '.join(keys)}"
            )
        parsed[key] = parse_value(value)
    return parsed


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def as_int_list(value: str | list[str], key: str) -> list[int]:
    try:
        numbers = [int(v) for v in as_list(value)]
    except ValueError as error:
        raise UserError(f"{key}={value} is invalid: expected integers, e.g. {key}=[1,5]") from error
    if not numbers or any(n < 1 for n in numbers):
        raise UserError(f"{key}={value} is invalid: every k must be at least 1")
    return sorted(set(numbers))


def usage_lines(keys: Mapping[str, str]) -> str:
    width = max(len(k) for k in keys)
    return "\n".join(f"  {k:<{width}}  {text}" for k, text in keys.items())
