"""The trainer, logger and method options: typed schemas and their rules.

Every leaf key of these nodes refuses an unknown sibling key and a value of the wrong type
while the config is composed (or, for the one untyped key, ``trainer.compile``, while it is
validated), in one line naming the full key, and ``imgcls train`` refuses them before any
folder is made. The engine trains with trainer options built in Python, without Hydra.
"""

from __future__ import annotations

import csv
import dataclasses
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY
from torch import nn

from imgcls import cli
from imgcls.app.validation import trainer_options, validate
from imgcls.base.errors import UserError
from imgcls.base.runs import RunDirectory
from imgcls.config.compose import compose
from imgcls.config.options import loggers, methods
from imgcls.config.options.trainer import (
    TTA_VIEWS,
    EarlyStoppingOptions,
    EmaOptions,
    LookaheadOptions,
    Monitor,
    Precision,
    StopMonitor,
    Strategy,
    TrainerOptions,
)
from imgcls.data.loader import DeviceLoader
from imgcls.data.splits import ImageSet
from imgcls.registry import make_options
from imgcls.train.engine import Engine
from imgcls.train.runtime import Runtime
from imgcls.train.tta import VIEWS


def wrong_value(hint: Any) -> str:
    """An override value that the type ``hint`` refuses."""
    if hint in (int, float):
        return "abc"
    if hint is bool:
        return "maybe"
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "nope"
    if typing.get_origin(hint) in (list, dict):
        return "5"
    return "[1]"  # str, Optional[str], Any: a list where one value belongs


def leaves(cls: type, prefix: str) -> list[tuple[str, Any]]:
    """(full key, type) of every leaf field of an options dataclass, nested ones included."""
    found = []
    for name, hint in typing.get_type_hints(cls).items():
        if name == "name":
            continue  # the component's name: the group choice, covered by the registries
        if dataclasses.is_dataclass(hint):
            found += leaves(hint, f"{prefix}.{name}")
        else:
            found.append((f"{prefix}.{name}", hint))
    return found


# (overrides choosing the option, options class, config prefix)
NODES = [
    ([], TrainerOptions, "trainer"),
    (["logger=csv"], loggers.CsvOptions, "logger.csv"),
    (["logger=tensorboard"], loggers.TensorBoardOptions, "logger.tensorboard"),
    (["logger=mlflow"], loggers.MlflowOptions, "logger.mlflow"),
    (["method=standard"], methods.StandardOptions, "method"),
    (["method=dann"], methods.DannOptions, "method"),
    (["method=distill"], methods.DistillOptions, "method"),
]
WRONG = [
    ([*choose, f"{key}={wrong_value(hint)}"], key)
    for choose, cls, prefix in NODES
    for key, hint in leaves(cls, prefix)
]
PARENTS = {(tuple(choose), prefix): None for choose, cls, prefix in NODES} | {
    ((), f"trainer.{key}"): None for key in ("ema", "early_stopping", "lookahead")
}
UNKNOWN = [([*choose, f"{prefix}.bogus=1"], f"{prefix}.bogus") for choose, prefix in PARENTS]
CASES = WRONG + UNKNOWN


def refused_in_one_line(overrides: list[str], key: str) -> str:
    with pytest.raises(UserError) as error:
        validate(compose([*TINY, *overrides]))
    message = str(error.value)
    assert "\n" not in message and key in message, message
    return message


def test_every_leaf_and_node_is_covered():
    keys = {key for _, key in WRONG}
    assert {
        "trainer.ema.decay",
        "trainer.early_stopping.monitor",
        "trainer.lookahead.every",
    } <= keys
    assert {"trainer.precision", "trainer.test_tta", "method.target_dataset"} <= keys
    assert len(WRONG) == 38 and len(UNKNOWN) == 10  # 29 trainer, 3 logger, 6 method keys


@pytest.mark.parametrize(("overrides", "key"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_wrong_type_or_an_unknown_key_is_refused_naming_the_full_key(overrides, key):
    if key == "trainer.compile":  # untyped (false, true or a mode): refused while validating
        refused_in_one_line(overrides, key)
        return
    with pytest.raises(UserError) as error:  # typed: Hydra refuses it while composing
        compose([*TINY, *overrides])
    message = str(error.value)
    assert "\n" not in message and key in message, message


# Through the command line: every node's unknown key and one wrong type per node.
CLI_CASES = UNKNOWN + list({c[1].rsplit(".", 1)[0]: c for c in WRONG}.values())


@pytest.mark.parametrize(("overrides", "key"), CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_the_command_line_refuses_in_the_same_line_before_any_folder(
    tmp_path, monkeypatch, capsys, overrides, key
):
    message = refused_in_one_line(overrides, key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert cli.main(["train", *TINY, f"output_root={tmp_path / 'out'}", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"imgcls: error: {message}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.precision=8"], r"unknown trainer.precision '8'; available: 16, 32, auto, bf16"),
        (["trainer.precision=[1]"], r"expected one of auto, 32, bf16, 16"),
        (["trainer.strategy=dp"], r"unknown trainer.strategy 'dp' — did you mean 'ddp'\?"),
        (["trainer.monitor=train_loss"], r"unknown trainer.monitor 'train_loss'"),
        (["trainer.early_stopping.monitor=val"], r"available: auto, train_accuracy, train_loss"),
        (["trainer.early_stopping.patience=-1"], r"trainer.early_stopping.patience=-1 is invalid"),
        (["trainer.lookahead.every=-2"], r"trainer.lookahead.every=-2 is invalid: use >= 0"),
        (["trainer.lookahead.power=-1"], r"trainer.lookahead.power=-1 is invalid"),
        (["trainer.ema.decay=-0.5"], r"trainer.ema.decay=-0.5 is invalid: use \[0, 1\)"),
        (["trainer.test_tta=[hflip,vflip]"], r"trainer.test_tta=\[hflip, vflip\] is invalid"),
        (["trainer.compile=fastest"], r"trainer.compile=fastest is invalid: .*reduce-overhead"),
        (["trainer.device=gpu"], r"trainer.device='gpu' is invalid: use auto, cpu, cuda"),
        (["trainer.num_workers=-1"], r"trainer.num_workers=-1 is invalid"),
        (["trainer.limit_train_batches=-1"], r"trainer.limit_train_batches=-1 is invalid"),
        (["method=dann", "method.lambda_max=-1"], r"method.lambda_max=-1 is invalid"),
        (["method=dann", "method.domain_hidden=0"], r"method.domain_hidden=0 is invalid"),
        (["method=distill", "method.temperature=0"], r"method.temperature=0 is invalid"),
        (["method=distill", "method.alpha=1.5"], r"method.alpha=1.5 is invalid"),
    ],
)
def test_rules_name_the_full_key(overrides, message):
    with pytest.raises(UserError, match=message) as error:
        validate(compose([*TINY, *overrides]))
    assert "\n" not in str(error.value)


def test_choices_compose_by_the_spellings_users_type():
    for value, member in (("32", "32"), ("16", "16"), ("bf16", "bf16"), ("auto", "auto")):
        trainer = trainer_options(compose([f"trainer.precision={value}"]).trainer)
        assert trainer.precision is Precision[member]
    cfg = compose(["trainer.precision='32'", "trainer.strategy=ddp", "trainer.monitor=val_loss"])
    trainer = trainer_options(cfg.trainer)
    assert trainer.precision is Precision["32"] and trainer.strategy is Strategy.ddp
    # early stopping watches the trainer's metric unless told otherwise
    assert trainer.early_stopping.monitor is StopMonitor.val_loss
    assert trainer.early_stopping.mode.value == "max"
    other = compose(["trainer.early_stopping.monitor=train_loss"]).trainer
    assert trainer_options(other).early_stopping.monitor is StopMonitor.train_loss


def test_options_made_in_python_take_plain_values_and_fill_in_the_trainer_s_monitor():
    trainer = TrainerOptions(precision="32", monitor="val_loss", monitor_mode="min")
    assert trainer.precision is Precision["32"] and trainer.monitor is Monitor.val_loss
    assert trainer.early_stopping.monitor is StopMonitor.val_loss
    assert trainer.early_stopping.mode.value == "min"
    assert TrainerOptions(precision=16).precision is Precision["16"]
    made = make_options(
        TrainerOptions,
        {"epochs": 3, "ema": {"decay": 0.9}, "early_stopping": {"patience": 2}},
        "trainer",
    )
    assert made.ema == EmaOptions(0.9) and made.early_stopping.patience == 2
    with pytest.raises(UserError, match=r"^trainer.early_stopping.patience=-1 is invalid"):
        make_options(TrainerOptions, {"early_stopping": {"patience": -1}}, "trainer")
    with pytest.raises(UserError, match=r"unknown config key 'trainer.lookahead.evry'"):
        make_options(TrainerOptions, {"lookahead": {"evry": 2}}, "trainer")
    with pytest.raises(
        UserError, match=r"^unknown trainer.precision '8'; available: 16, 32, auto, bf16"
    ):
        make_options(TrainerOptions, {"precision": 8}, "trainer")


def test_fast_dev_run_is_one_epoch_of_one_batch_each():
    trainer = TrainerOptions(epochs=5, limit_train_batches=3, accumulate_batches=2)
    assert trainer.run_epochs == 5 and trainer.val_batch_limit == 0
    assert trainer.train_batches(10) == 3 and trainer.optimizer_steps(10) == 2
    assert trainer.train_batches(2) == 2
    quick = dataclasses.replace(trainer, fast_dev_run=True)
    assert quick.run_epochs == 1 and quick.val_batch_limit == 1
    assert quick.train_batches(10) == 1 and quick.optimizer_steps(10) == 1


def test_compile_values():
    assert TrainerOptions(compile=False).compile_mode is None
    assert TrainerOptions(compile="off").compile_mode is None
    assert TrainerOptions(compile=True).compile_mode == "default"
    assert TrainerOptions(compile="max-autotune").compile_mode == "max-autotune"


def test_the_tta_views_the_config_accepts_are_the_views_that_exist():
    assert tuple(VIEWS) == TTA_VIEWS


def test_the_engine_trains_with_options_built_in_python(tmp_path: Path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 4, 4), dtype=torch.uint8)
    labels = torch.arange(12) % 3
    loader = DeviceLoader(ImageSet(images, labels), 4, (0.0,), (1.0,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = TrainerOptions(
        epochs=3,
        monitor="val_loss",
        monitor_mode="min",
        accumulate_batches=2,
        ema=EmaOptions(decay=0.5),
        early_stopping=EarlyStoppingOptions(patience=5),
        lookahead=LookaheadOptions(every=2),
        save_top_k=2,
    )
    run = RunDirectory(tmp_path)
    run.prepare()
    engine = Engine(model, optimizer, scheduler, loader, loader, run, trainer, Runtime())
    fit = engine.fit()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # 3 batches, a step every 2 (and the rest)
    assert fit.epochs_completed == 3 and fit.steps == 6
    assert engine.ema is not None and engine.lookahead is not None
    assert engine.early_stopping is not None and engine.early_stopping.monitor == "val_loss"
    best = min(fit.history, key=lambda row: (row["val_loss"], -row["epoch"]))
    assert (fit.best_epoch, fit.best_value) == (best["epoch"], best["val_loss"])
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
