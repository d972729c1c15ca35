"""A seeded fuzz of the config stage: hostile override values for every group and option.

The cases are generated from the schemas themselves (``imgcls.config.options.SCHEMAS``, the
trainer's and the data settings' dataclasses) and the option files in ``conf/``: for each
field, a value of the wrong type, a non-finite or too-large number, a list or mapping for a
scalar, an empty, non-ASCII or very long string, an unknown choice or key, or an
interpolation that cannot resolve; and, for numbers, a value the field's own rule refuses
(asked of the dataclass, so that only values outside the stated rule are generated).

Every case runs ``imgcls train`` in-process in an empty folder with ``output_root`` inside it
and must fail while the config is checked: exit code 2, exactly one line on stderr without a
traceback or "internal error", and nothing created.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import typing
from pathlib import Path

import pytest
import yaml

from imgcls import cli
from imgcls.base.errors import OptionError
from imgcls.config.files import COMPONENT_GROUPS, LIST_GROUPS, config_dir, group_options
from imgcls.config.options import SCHEMAS
from imgcls.config.options.trainer import TrainerOptions
from imgcls.config.schemas import DataConfig, ReportConfig

SEED = 20261206
UNSET = "IMGCLS_FUZZ_UNSET_VARIABLE"
LONG = "x" * 300

# Values that no field of the type accepts, whatever the field's rule.
BAD_ANY = [
    f"${{oc.env:{UNSET}}}",  # an unset environment variable
    "${no_such_resolver:1}",  # an unknown resolver
    "${fuzz_no_such_key}",  # a reference to a key that does not exist
    "{a: 1}",  # a mapping for a scalar
]
BAD_BY_TYPE: dict[str, list[str]] = {
    "int": ["abc", "1.5", "[1,2]", "''", "é", LONG, "100000000000000000000000"],
    "float": ["abc", "[1]", "nan", "inf", "-inf", "''", "ü", LONG, "1e400"],
    "bool": ["maybe", "[true]", "''", "日本"],
    "str": ["[a,b]"],
    "enum": ["no_such_choice", "[a]", "''", "ü", LONG],
    "list": ["abc", "7"],
}
# Numbers tried against each numeric field's own rule; kept only where the rule refuses them.
RANGE_PROBES = {"int": [-1, 0, -(10**9)], "float": [-1.0, 0.0, -1e9, 1e9, 2.0]}
# Fields whose values are paths, names or free text: any string is legitimately accepted.
FREE_TEXT = {"name"}


@dataclasses.dataclass(frozen=True)
class Target:
    """One field: how to select its option, its full key, its type, its dataclass."""

    select: tuple[str, ...]
    key: str
    kind: str
    schema: type
    field: str
    defaults: tuple[tuple[str, object], ...]


def _kind(hint: object) -> str | None:
    """The fuzz type of a field's annotation; None for those not fuzzed (mappings, Any)."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    if hint in (int, float, bool, str):
        return hint.__name__
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "enum"
    if typing.get_origin(hint) in (list, tuple):
        return "list"
    return None


def _fields(schema: type, prefix: str, select: tuple[str, ...], defaults: dict) -> list[Target]:
    """The fuzzable fields of a dataclass, nested dataclasses included (``trainer.ema.decay``)."""
    hints = typing.get_type_hints(schema)
    found = []
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        if f.name in FREE_TEXT:
            continue
        if dataclasses.is_dataclass(hint):
            found += _fields(hint, f"{prefix}.{f.name}", select, defaults.get(f.name) or {})
            continue
        kind = _kind(hint)
        if kind is not None:
            plain = tuple((k, v) for k, v in defaults.items() if not isinstance(v, dict))
            found.append(Target(select, f"{prefix}.{f.name}", kind, schema, f.name, plain))
    return found


def _option_defaults(group: str, option: str) -> dict:
    """The option's own values in ``conf/<group>/<option>.yaml`` (without its defaults list)."""
    text = (config_dir() / group / f"{option}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    data.pop("defaults", None)
    return data


def targets() -> list[Target]:
    """Every fuzzable field of every option file of every component group, the trainer,
    the data settings and the top-level keys."""
    found: list[Target] = []
    for group in COMPONENT_GROUPS:
        for option in group_options(group):
            schema = SCHEMAS.get((group, option))
            if schema is None:
                continue
            prefix = f"{group}.{option}" if group in LIST_GROUPS else group
            select = (f"{group}={option}",)
            found += _fields(schema, prefix, select, _option_defaults(group, option))
    trainer_defaults = yaml.safe_load((config_dir() / "trainer" / "default.yaml").read_text())
    found += _fields(TrainerOptions, "trainer", (), trainer_defaults)
    found += _fields(DataConfig, "data", (), {})
    found += _fields(ReportConfig, "report", (), {})
    found.append(Target((), "seed", "int", object, "seed", ()))
    return found


def _refused(target: Target, value: object) -> bool:
    """Whether the field's own rule refuses ``value``, with the dataclass's defaults and with
    the option file's values (so that a rule that spans fields cannot mislead the fuzz)."""
    if target.key == "seed":
        return value < 0
    if target.kind not in ("int", "float") or target.schema is object:
        return False
    names = {f.name for f in dataclasses.fields(target.schema)}
    base = {"name": "fuzz"} if "name" in names else {}
    for extra in ({}, {k: v for k, v in target.defaults if k in names and k != "name"}):
        try:
            target.schema(**{**base, **extra, target.field: value})
        except OptionError:
            continue
        except (TypeError, ValueError):  # a field the dataclass cannot take plain: no verdict
            return False
        return False
    return True


def _case(rng: random.Random, target: Target) -> tuple[str, list[str]]:
    """One hostile value for the field: a number its rule refuses, or a bad value of any kind."""
    probes = [p for p in RANGE_PROBES.get(target.kind, []) if _refused(target, p)]
    if probes and rng.random() < 0.5:
        value = str(rng.choice(probes))
    else:
        value = rng.choice(BAD_BY_TYPE[target.kind] + BAD_ANY)
    return f"{target.key}={value[:24]}", [*target.select, f"{target.key}={value}"]


def cases(per_option: int = 1, trainer_fields: int = 16) -> list[tuple[str, list[str]]]:
    """The generated cases, (id, overrides), seeded and in a stable order: ``per_option``
    fields of every option of every group, some of the trainer's and every other field,
    one unknown key per group, and the interpolation and seed mistakes of the whole config."""
    rng = random.Random(SEED)
    by_option: dict[tuple[str, ...], list[Target]] = {}
    for target in targets():
        by_option.setdefault(target.select or (target.key.split(".")[0],), []).append(target)
    generated: list[tuple[str, list[str]]] = []
    unknown_keys: set[str] = set()
    for select, fields in by_option.items():
        count = trainer_fields if select == ("trainer",) else per_option
        for target in rng.sample(fields, min(count, len(fields))):
            generated.append(_case(rng, target))
        group = select[0].split("=")[0]
        if "=" in select[0] and group not in unknown_keys:  # an unknown key, once per group
            unknown_keys.add(group)
            parent = fields[0].key.rsplit(".", 1)[0]
            unknown = f"{parent}.fuzz_unknown_{rng.randrange(1000)}=1"
            generated.append((f"{select[0]}:{unknown}", [*select, unknown]))
    generated += [
        ("seed-huge", ["seed=99999999999999999999"]),
        ("seed-self", ["seed=${seed}"]),
        ("cycle", ["+fuzz_a=${fuzz_b}", "+fuzz_b=${fuzz_a}"]),
        ("unknown-group-option", ["model=fuzz_no_such_model"]),
        ("unknown-top-key", ["fuzz_top_key=1"]),
        ("output_root-list", ["output_root=[a,b]"]),
        ("missing-value", ["seed=???"]),
        ("seed-negative", ["seed=-1"]),
        ("seed-float", ["seed=1.5"]),
        ("epochs-beyond-64-bits", ["trainer.epochs=100000000000000000000"]),
        ("output_root-mapping", ["output_root={a: 1}"]),
    ]
    return generated


CASES = cases()


def test_the_fuzz_has_enough_cases():
    assert len(CASES) >= 80, len(CASES)
    groups = {args[0].split("=")[0] for _, args in CASES if "=" in args[0]}
    assert set(COMPONENT_GROUPS) <= groups | {"regularizer", "logger"}


@pytest.mark.parametrize("overrides", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_config_value_fails_in_one_line_and_leaves_nothing(
    overrides, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    for name in ("IMGCLS_DEBUG", "HYDRA_FULL_ERROR", UNSET):
        monkeypatch.delenv(name, raising=False)
    root = [] if any(o.startswith("output_root=") for o in overrides) else ["output_root=out"]
    code = cli.main(["train", *overrides, *root])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert "Traceback" not in captured.err + captured.out
    assert "internal error" not in err
    assert list(tmp_path.iterdir()) == [], "the config stage created files"
