"""Every component's options dataclass is its schema: an unknown key or a value of the wrong
type in any option file of any group is refused while composing, naming the full key, and
through the command line before any folder is made."""

from __future__ import annotations

import dataclasses
import os
import typing
from enum import Enum
from pathlib import Path

import pytest
import yaml

from imgcls import cli
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.files import COMPONENT_GROUPS, LIST_GROUPS, config_dir, group_options
from imgcls.config.options import SCHEMAS
from imgcls.registry import REGISTRIES

OPTION_FILES = [(group, name) for group in COMPONENT_GROUPS for name in group_options(group)]
# The training groups: model, dataset and augment files are tried the same way in
# test_options_data_models.py, logger and method (and the trainer) in test_options_trainer.py.
TRAINING_FILES = [(g, n) for g, n in OPTION_FILES if g in ("optimizer", "scheduler", "regularizer")]


def _choose(group: str, name: str) -> tuple[list[str], str]:
    """The override that picks ``name`` and the config path of its node."""
    if group in LIST_GROUPS:
        return [f"{group}=[{name}]"], f"{group}.{name}"
    return [f"{group}={name}"], group


def _wrong_value(kind: typing.Any) -> str | None:
    """A value that no field of type ``kind`` accepts, or None when every string would do."""
    if kind in (int, float):
        return "not_a_number"
    if kind is bool:
        return "maybe"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "no_such_choice"
    if typing.get_origin(kind) in (list, typing.List):  # noqa: UP006
        return "not_a_list"
    return None


def _typed_field(options: type) -> tuple[str, str] | None:
    """A field of ``options`` with a type that refuses some string, and such a string."""
    hints = typing.get_type_hints(options)
    for field in dataclasses.fields(options):
        value = _wrong_value(hints[field.name])
        if value is not None and field.name != "name":
            return field.name, value
    return None


@pytest.mark.parametrize(("group", "name"), OPTION_FILES, ids=[f"{g}={n}" for g, n in OPTION_FILES])
def test_every_option_file_extends_its_registered_schema(group, name):
    entry = REGISTRIES[group].get(name)
    assert dataclasses.is_dataclass(entry.options), f"{group} '{name}' has no options class"
    assert SCHEMAS[(group, name)] is entry.options
    text = yaml.safe_load((config_dir() / group / f"{name}.yaml").read_text())
    assert f"/schema/{group}/{name}@_here_" in text["defaults"]


@pytest.mark.parametrize(
    ("group", "name"), TRAINING_FILES, ids=[f"{g}={n}" for g, n in TRAINING_FILES]
)
def test_an_unknown_key_in_any_option_file_names_the_full_key(group, name):
    choose, path = _choose(group, name)
    with pytest.raises(UserError, match=rf"unknown config key '{path}.nosuchkey'") as info:
        compose([*choose, f"{path}.nosuchkey=1"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("group", "name"), TRAINING_FILES, ids=[f"{g}={n}" for g, n in TRAINING_FILES]
)
def test_a_wrong_type_in_any_option_file_names_the_full_key(group, name):
    typed = _typed_field(REGISTRIES[group].get(name).options)
    if typed is None:
        pytest.skip(f"{group} '{name}' has no field that refuses a string")
    key, value = typed
    choose, path = _choose(group, name)
    with pytest.raises(UserError, match=rf"{path}\.{key}(={value}| '{value}')") as info:
        compose([*choose, f"{path}.{key}={value}"])
    assert "\n" not in str(info.value)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer.nosuchkey=1"],
        ["optimizer.lr=fast"],
        ["scheduler=step", "scheduler.step_size=ten"],
        ["regularizer=[l2]", "regularizer.l2.weight_decay=heavy"],
        ["scheduler=onecycle", "scheduler.anneal=sideways"],
        ["trainer.nosuchkey=1"],
        ["trainer.ema.decay=high"],
    ],
)
def test_the_command_line_refuses_before_any_folder_is_made(tmp_path, capsys, overrides):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = cli.main(["train", f"output_root={tmp_path / 'out'}", *overrides])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and overrides[-1].split("=")[0] in err, err
    assert _files(tmp_path) == set(), "a folder or file was made"


def test_an_optimizer_added_in_three_files_builds_from_its_config():
    """NAdam was added as an options class, a builder and a YAML file: it composes, validates
    and builds torch's NAdam with the configured values."""
    import torch

    from imgcls.app.build import build_optimizer
    from imgcls.app.validation import validate

    cfg = compose(["optimizer=nadam", "optimizer.momentum_decay=0.01", "trainer.device=cpu"])
    validate(cfg)
    optimizer = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(2, 2))], [])
    assert isinstance(optimizer, torch.optim.NAdam)
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.002 and group["momentum_decay"] == 0.01
