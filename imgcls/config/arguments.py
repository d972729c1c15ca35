"""``key=value`` arguments of ``imgcls eval``, ``predict`` and ``export``, read with Hydra's
own override parser (no torch).

The grammar is the one ``imgcls train`` takes: quoting (``images='my pics/'``,
``out="a,b"``), lists in brackets (``run=[a,b]``, ``topk=[1,5]``), escapes (``out=a\\,b``)
and Hydra's parse errors. A value the grammar reads as a number or a boolean where a path or
a name is expected is taken as the user typed it (``out=2026`` is the folder ``2026``);
``null`` leaves a key at its default. What these commands cannot use is refused in one line:
a sweep (``split=test,val``: several runs), ``+key``, ``++key``, ``~key`` and ``key@package``.
An unknown key names the valid ones, with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.override_parser.types import Override, OverrideType

from imgcls.base.errors import UserError, did_you_mean
from imgcls.base.record import override_parser

GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic"


class Kind(Enum):
    """What a key's value must be, and what the parser hands on."""

    TEXT = "text"  # one path or name: str
    TEXTS = "texts"  # one or a list of paths or names: list[str]
    INT = "int"  # one integer: int
    INTS = "ints"  # one or a list of integers: list[int]
    VALUE = "value"  # anything, typed as Hydra reads it (dataset.<key>=...)


@dataclass(frozen=True)
class Key:
    """One key of a command: the line its ``--help`` shows and the kind of its value."""

    help: str
    kind: Kind = Kind.TEXT


@dataclass(frozen=True)
class Grammar:
    """The keys one command takes; keys under ``prefixes`` (``dataset.``) pass through."""

    command: str
    keys: Mapping[str, Key]
    prefixes: tuple[str, ...] = field(default=())

    def parse(self, args: Sequence[str]) -> dict[str, Any]:
        """The given keys and their values (only those given: defaults are the caller's).

        Raises :class:`UserError` naming the argument that is malformed, unknown or of the
        wrong kind.
        """
        parsed: dict[str, Any] = {}
        for arg in args:
            if "=" not in arg and not arg.startswith("~"):
                raise self._not_key_value(arg)
            override = parse_override(arg)
            key = self._check_form(override, arg)
            value = self._convert(key, override, arg)
            if value is not None:
                parsed[key] = value
            else:
                parsed.pop(key, None)  # key=null: back to the default
        return parsed

    def usage(self) -> str:
        """The ``keys:`` block of the command's ``--help``: one line per key."""
        width = max(len(k) for k in self.keys)
        return "\n".join(f"  {k:<{width}}  {key.help}" for k, key in self.keys.items())

    def _check_form(self, override: Override, arg: str) -> str:
        key = override.key_or_group
        if not key:
            raise self._not_key_value(arg)
        if override.type != OverrideType.CHANGE or override.package is not None:
            raise UserError(
                f"imgcls {self.command} takes key=value, not '{arg}': +key, ++key, ~key and "
                "key@package are for imgcls train"
            )
        if key not in self.keys and not key.startswith(self.prefixes):
            raise UserError(
                f"unknown {self.command} key '{key}'{did_you_mean(key, self.keys) or ';'} "
                f"valid keys: {', '.join(self.keys)}"
            )
        if override.is_sweep_override():
            raise UserError(
                f"{arg} is a sweep (one job per value, for imgcls train -m): "
                f"imgcls {self.command} takes one value per key; quote a comma that is part of "
                f"the value ({key}='a,b') or give a list in brackets where the key takes one "
                f"({key}=[a,b])"
            )
        return key

    def _not_key_value(self, arg: str) -> UserError:
        return UserError(
            f"imgcls {self.command}: expected key=value, got '{arg}'; "
            f"valid keys: {', '.join(self.keys)}"
        )

    def _convert(self, key: str, override: Override, arg: str) -> Any:
        kind = self.keys[key].kind if key in self.keys else Kind.VALUE
        value = override.value()
        if value is None or kind is Kind.VALUE:
            return value
        text = arg.partition("=")[2].strip()
        if kind in (Kind.INT, Kind.INTS):
            numbers = value if isinstance(value, list) and kind is Kind.INTS else [value]
            if not numbers or not all(_is_int(n) for n in numbers):
                expected = f"integers, e.g. {key}=[1,5]" if kind is Kind.INTS else "an integer"
                raise UserError(f"{key}={text} is invalid: expected {expected}")
            return numbers if kind is Kind.INTS else numbers[0]
        if isinstance(value, list) and kind is Kind.TEXTS:
            if not all(isinstance(item, str | int | float | bool) for item in value):
                raise UserError(f"{key}={text} is invalid: expected a list of paths or names")
            return [str(item) for item in value]
        if isinstance(value, list | dict):
            raise UserError(
                f"{key}={text} is invalid: imgcls {self.command} takes one value for {key}"
            )
        # a number or boolean where a path or name is expected: what the user typed
        single = value if isinstance(value, str) else text
        return [single] if kind is Kind.TEXTS else single


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_override(arg: str) -> Override:
    """One argument read by Hydra's override parser; a malformed one is one line naming it."""
    try:
        return override_parser().parse_overrides([arg])[0]
    except Exception as error:  # Hydra's OverrideParseException, and its function errors
        raise override_error(arg, error) from error


def override_error(arg: str, error: BaseException) -> UserError:
    """One line for an argument Hydra's grammar cannot read, with what to do about it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [
        line
        for line in lines
        if not line.startswith(("Error parsing override", "See https://", "^"))
    ]
    reason = " ".join(" ".join(reasons).split())
    if reason.startswith("LexerNoViableAltException"):
        reason = "a character that needs quotes"
    return UserError(
        f"cannot parse '{arg}': {reason or 'not key=value'}; quote a value that holds other "
        f"characters than ASCII letters, digits, spaces and _-+./\\:$%*@?| (key='...'); "
        f"see {GRAMMAR_URL}"
    )


def wants_help(args: Sequence[str]) -> bool:
    """Whether the arguments ask for ``--help`` (or are empty, which shows it too)."""
    return not args or args[0] in ("-h", "--help")
