"""The augment, dataset and model options: every file extends its schema, and a bad key or
a value of the wrong type in any of them is one line naming the full key, before any folder."""

from __future__ import annotations

import dataclasses
import enum
import typing

import pytest
import yaml
from conftest import CPU

from imgcls import cli
from imgcls.app.validation import validate
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.config.files import config_dir, group_options
from imgcls.config.options import SCHEMAS
from imgcls.registry import AUGMENTS, DATASETS, MODELS

GROUPS = {"augment": AUGMENTS, "dataset": DATASETS, "model": MODELS}
FILES = [(group, option) for group in GROUPS for option in group_options(group)]
IDS = [f"{group}={option}" for group, option in FILES]


def wrong_type(group: str, option: str) -> tuple[str, str]:
    """(key, value): the first option of a typed (not string) field, set to a value that
    does not convert to its type."""
    cls = GROUPS[group].get(option).options
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        base = args[0] if typing.get_origin(kind) is typing.Union else kind
        if base in (int, float) or typing.get_origin(base) is list:
            return item.name, "abc"
        if base is bool:
            return item.name, "maybe"
        if isinstance(base, type) and issubclass(base, enum.Enum):
            return item.name, "nosuchchoice"
    raise AssertionError(f"{group}={option} has no typed option")


def cases() -> list[tuple[str, str, list[str], str]]:
    """(group, option, overrides, the full key the error must name) for every file."""
    out = []
    for group, option in FILES:
        out.append((group, option, [f"{group}.nosuchkey=1"], f"{group}.nosuchkey"))
        key, value = wrong_type(group, option)
        out.append((group, option, [f"{group}.{key}={value}"], f"{group}.{key}"))
    return out


CASES = cases()
CASE_IDS = [f"{g}={o} {' '.join(overrides)}" for g, o, overrides, _ in CASES]
# Through the command line, one option file of each group is enough: the same validate() runs.
FIRST = {group: option for group, option in reversed(FILES)}
CLI_CASES = [c for c in CASES if FIRST[c[0]] == c[1]]
CLI_IDS = [f"{g}={o} {' '.join(overrides)}" for g, o, overrides, _ in CLI_CASES]


@pytest.mark.parametrize(("group", "option"), FILES, ids=IDS)
def test_every_file_extends_its_schema_and_its_registry_entry_has_it(group, option):
    document = yaml.safe_load((config_dir() / group / f"{option}.yaml").read_text())
    assert document["name"] == option
    defaults = document["defaults"]
    assert defaults[0] == f"/schema/{group}/{option}@_here_"
    assert "_self_" in defaults
    assert GROUPS[group].get(option).options is SCHEMAS[(group, option)]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_registered_component_has_an_options_class(group):
    registry = GROUPS[group]
    ours = [e for e in registry.entries() if e.builder.__module__.startswith("imgcls.")]
    assert {e.name for e in ours} >= set(group_options(group))
    for entry in ours:  # variants (resnet50) too: they use their family's class
        assert entry.options is not None, entry.name
        assert SCHEMAS[(group, entry.name)] is entry.options, entry.name
        made = registry.options(entry.name, {})
        assert isinstance(made, entry.options) and made.name == entry.name


@pytest.mark.parametrize(("group", "option", "overrides", "key"), CASES, ids=CASE_IDS)
def test_refused_while_composing_and_validating(group, option, overrides, key):
    with pytest.raises(UserError) as info:
        validate(compose([f"{group}={option}", *overrides]))
    message = str(info.value)
    assert key in message and "\n" not in message, message


@pytest.mark.parametrize(("group", "option", "overrides", "key"), CLI_CASES, ids=CLI_IDS)
def test_train_refuses_before_any_folder(
    group, option, overrides, key, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    args = ["train", f"{group}={option}", *overrides, *CPU, f"output_root={tmp_path / 'out'}"]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert key in err, err
    assert list(tmp_path.iterdir()) == [], "something was written"


def test_variant_names_take_their_family_options_with_the_variant_fixed():
    made = MODELS.options("resnet50", {})
    assert type(made).__name__ == "ResnetOptions" and made.variant == "resnet50"
    assert MODELS.options("resnet", {}).variant == "resnet18"  # the family's default
    with pytest.raises(UserError, match=r"model.variant=resnet18 is invalid: model 'resnet50'"):
        MODELS.options("resnet50", {"variant": "resnet18"})
    with pytest.raises(UserError, match=r"unknown vgg variant 'vgg12' — did you mean"):
        MODELS.options("vgg", {"variant": "vgg12"})


@pytest.mark.parametrize(
    ("group", "name", "values", "message"),
    [
        ("model", "simplecnn", {"dropout": 1.0}, r"^model.dropout=1 is invalid: use \[0, 1\)$"),
        ("model", "bncnn", {"widths": [8, 0]}, r"^model.widths=\[8, 0\] is invalid: use >= 1$"),
        (
            "model",
            "bncnn",
            {"global_pool": "min"},
            r"^unknown model.global_pool 'min'; available: avg, avgmax, max",
        ),
        ("model", "densenet", {"growth_rate": 0}, r"^model.growth_rate=0 is invalid"),
        (
            "model",
            "resnet",
            {"stem": "tiny"},
            r"^unknown model.stem 'tiny'; available: auto, cifar, imagenet",
        ),
        ("dataset", "digits", {"val_fraction": 1.5}, r"^dataset.val_fraction=1.5 is invalid"),
        ("dataset", "folder", {"channels": 2}, r"^dataset.channels=2 is invalid: use 1"),
        ("augment", "basic", {"crop": {"padding": -1}}, r"^augment.crop.padding=-1 is invalid"),
        ("augment", "none", {"mix": {"prob": 2}}, r"^augment.mix.prob=2 is invalid"),
    ],
)
def test_rules_name_the_key_under_the_prefix_given(group, name, values, message):
    with pytest.raises(UserError, match=message):
        GROUPS[group].options(name, values)
    prefix = "method.target_dataset" if group == "dataset" else f"teacher.{group}"
    prefixed = message.replace(f"^{group}", f"^{prefix}").replace(
        f"^unknown {group}", f"^unknown {prefix}"
    )
    with pytest.raises(UserError, match=prefixed):
        GROUPS[group].options(name, values, prefix)


def test_eval_dataset_option_loads_the_file_without_its_schema_line():
    """``imgcls eval dataset=<option>`` reads conf/dataset/<option>.yaml by hand."""
    from omegaconf import OmegaConf

    from imgcls.app.build import build_dataset
    from imgcls.app.evaluation import dataset_config

    base = OmegaConf.to_container(compose([]), resolve=True, enum_to_str=True)  # a run's
    cfg = dataset_config(OmegaConf.create(base), {"dataset": "digits_shifted"})
    assert "defaults" not in cfg.dataset and cfg.dataset.name == "digits_shifted"
    assert build_dataset(cfg).name == "digits_shifted"
