"""Fine-tuning, freezing, L2-SP, gradient reversal and distillation, on tiny runs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CPU, TINY
from torch import nn

from imgcls import cli
from imgcls.app import build
from imgcls.app.job import seed_everything, train
from imgcls.base.checkpoint import load_checkpoint
from imgcls.base.errors import UserError
from imgcls.base.runs import RunDirectory
from imgcls.config.compose import compose
from imgcls.transfer.dann import dann_lambda, reverse_gradient
from imgcls.transfer.distill import distillation_terms
from imgcls.transfer.finetune import FineTune, freeze
from imgcls.transfer.heads import head_parameter_names

PLAIN = [
    *TINY,
    "regularizer=none",
    "augment=none",
    "scheduler=constant",
    "model.dropout=0.0",
    "optimizer=sgd",
    "scheduler.warmup_epochs=0",
]  # not simplecnn's recipe


def _run(tmp_path, name: str, *overrides: str):
    return train(compose([*PLAIN, *overrides]), run_dir=tmp_path / name)


def _metrics(run_dir) -> list[dict[str, str]]:
    import csv

    with open(RunDirectory(run_dir).metrics_path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny pre-trained run (4 classes of 1x8x8 patterns) to fine-tune from."""
    tmp = tmp_path_factory.mktemp("source")
    return _run(tmp, "source").run_dir


def test_gradient_reversal_negates_and_scales_by_lambda():
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)
    y = reverse_gradient(x, 0.37)
    assert torch.equal(y, x)  # identity forward
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.37 * weights)
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5, 2.0) == pytest.approx(2.0 * (2 / (1 + math.exp(-5)) - 1))
    assert dann_lambda(1.0) == pytest.approx(0.99991, abs=1e-5)


def test_freeze_backbone_trains_only_the_new_head(tmp_path, source_run):
    # 3 classes instead of the source's 4: the head is replaced, the backbone frozen.
    result = _run(
        tmp_path,
        "tuned",
        "dataset.num_classes=3",
        f"finetune.from={source_run}",
        "finetune.freeze=backbone",
    )
    source = load_checkpoint(source_run / "checkpoints" / "best.pt")["model"]
    tuned = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    cfg = compose([*PLAIN, "dataset.num_classes=3"])
    seed_everything(cfg.seed)
    fresh = build.build_model(cfg, build.build_dataset(cfg))
    head = head_parameter_names(fresh)
    backbone = [k for k in tuned if k not in head]
    assert backbone and all(torch.equal(tuned[k], source[k]) for k in backbone)
    assert all(not torch.equal(tuned[k], fresh.state_dict()[k]) for k in head)
    log = (result.run_dir / "train.log").read_text()
    assert "classifier head 'classifier.4' replaced" in log
    assert result.summary["finetune"]["head_replaced"] is True


def test_frozen_batch_norm_stays_in_eval_mode():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    freeze(model, "backbone", FineTune())
    model.train()
    before = model[1].running_mean.clone()
    model(torch.randn(8, 1, 4, 4) * 5 + 3).sum().backward()
    assert torch.equal(model[1].running_mean, before) and not model[1].training
    assert model[0].weight.grad is None and model[3].weight.grad is not None


def test_freeze_first_stages_and_backbone_lr_mult(tmp_path, source_run):
    result = _run(
        tmp_path,
        "stages",
        f"finetune.from={source_run}",
        "finetune.freeze=1",
        "finetune.backbone_lr_mult=0.1",
    )
    state = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    source = load_checkpoint(source_run / "checkpoints" / "best.pt")["model"]
    first = [k for k in source if k.startswith("features.0.")]
    assert first and all(torch.equal(state["model"][k], source[k]) for k in first)
    assert result.summary["finetune"]["frozen"] == ["features.0"]
    lrs = sorted({g["lr"] for g in state["optimizer"]["param_groups"]})
    assert lrs == pytest.approx([0.005, 0.05])  # sgd lr 0.05; the backbone x 0.1


def test_l2sp_term_is_logged_as_computed_by_hand(tmp_path, source_run):
    common = [
        f"finetune.from={source_run}",
        "regularizer=[l2sp]",
        "regularizer.l2sp.alpha=0.5",
        "trainer.epochs=1",
    ]
    one = _run(tmp_path, "one", *common, "trainer.limit_train_batches=1")
    two = _run(tmp_path, "two", *common, "trainer.limit_train_batches=2")
    pre = load_checkpoint(source_run / "checkpoints" / "best.pt")["model"]
    after_one = load_checkpoint(one.run_dir / "checkpoints" / "last.pt")["model"]
    cfg = compose(PLAIN)
    model = build.build_model(cfg, build.build_dataset(cfg))
    head = head_parameter_names(model)
    params = [n for n, _ in model.named_parameters() if n not in head]
    expected_second = 0.5 * sum(float((after_one[n] - pre[n]).pow(2).sum()) for n in params)
    assert expected_second > 0
    logged = float(_metrics(two.run_dir)[0]["l2sp_loss"])
    assert logged == pytest.approx((0.0 + expected_second) / 2, rel=1e-4)


def test_distillation_loss_is_logged_as_computed_by_hand(tmp_path, source_run):
    student = _run(
        tmp_path,
        "student",
        "method=distill",
        f"teacher={source_run}",
        "method.temperature=3.0",
        "method.alpha=0.6",
        "trainer.epochs=1",
        "trainer.batch_size=168",
        "trainer.limit_train_batches=1",
    )
    row = _metrics(student.run_dir)[0]
    cfg = compose(PLAIN)
    seed_everything(cfg.seed)
    data = build.build_dataset(cfg)
    model = build.build_model(cfg, data)  # the student's initial weights
    teacher = build.build_model(cfg, data)
    teacher.load_state_dict(load_checkpoint(source_run / "checkpoints" / "best.pt")["model"])
    teacher.eval()
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    images = (data.train.images.float() / 255.0 - mean) / std
    labels = data.train.labels
    model.train()
    with torch.no_grad():
        hard, soft = distillation_terms(model(images), teacher(images), labels, 3.0)
        by_hand_soft = (
            9.0
            * (
                torch.softmax(teacher(images) / 3, 1)
                * (
                    torch.log_softmax(teacher(images) / 3, 1)
                    - torch.log_softmax(model(images) / 3, 1)
                )
            )
            .sum(1)
            .mean()
        )
    assert float(soft) == pytest.approx(float(by_hand_soft), rel=1e-5)
    assert float(row["distill_kl"]) == pytest.approx(float(soft), rel=1e-4)
    assert float(row["ce_loss"]) == pytest.approx(float(hard), rel=1e-4)
    assert float(row["train_loss"]) == pytest.approx(float(0.4 * hard + 0.6 * soft), rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["finetune.from=/nonexistent/run"], "finetune.from=/nonexistent/run: no such run"),
        (["finetune.freeze=half"], "finetune.freeze=half is invalid"),
        (["finetune.backbone_lr_mult=-1"], "finetune.backbone_lr_mult=-1 is invalid"),
        (["method=distill"], "method=distill needs a teacher"),
        (["finetune.fro=x"], "unknown config key 'finetune.fro'"),
        (["regularizer=[l2sp]"], "regularizer=l2sp needs pre-trained weights"),
        (["method=dann", "method.target_dataset.name=digitz"], "did you mean 'digits'"),
    ],
)
def test_bad_transfer_input_is_one_clear_line(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("?", r"\?")):
        train(compose([*PLAIN, f"output_root={tmp_path}", *overrides]))
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_foreign_checkpoints_and_teachers_fail_with_exit_2(
    tmp_path, source_run, monkeypatch, capsys
):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    other = ["model=lenet", *(a for a in TINY if not a.startswith("model")), "regularizer=none"]
    cases = [
        ([*PLAIN, f"finetune.from={foreign}"], "finetune.from=" + str(foreign)),
        ([*other, f"finetune.from={source_run}"], "no backbone tensor fits"),
        ([*PLAIN, f"finetune.from={source_run}", "finetune.freeze=9"], "has 5 stages"),
        (
            [*PLAIN, "dataset.num_classes=3", "method=distill", f"teacher={source_run}"],
            "a teacher must know the same classes",
        ),
    ]
    for overrides, message in cases:
        with pytest.raises(UserError, match=message):
            train(compose(overrides))
    out = tmp_path / "cli"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    args = [*PLAIN, "dataset.num_classes=3", "method=distill", f"teacher={source_run}"]
    assert cli.main(["train", *args, f"output_root={out}"]) == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "same classes" in lines[0], stderr
    assert not any(p.is_dir() for p in out.rglob("*") if (p / "summary.json").exists())


def _summary(root) -> dict:
    import json

    (path,) = list(root.rglob("summary.json"))
    return json.loads(path.read_text())


@pytest.mark.slow
def test_dann_recipe_runs_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["experiment=dann_digits", "trainer.epochs=2", "trainer.limit_train_batches=3", *CPU]
    assert cli.main(["train", *args, f"output_root={tmp_path}"]) == 0
    summary = _summary(tmp_path)
    assert summary["method"] == "dann" and summary["status"] == "completed"
    assert summary["target"]["dataset"] == "digits_shifted"
    assert 0.0 <= summary["target"]["accuracy"] <= 1.0
    rows = _metrics(next(tmp_path.rglob("metrics.csv")).parent)
    assert {"domain_loss", "dann_lambda", "target_accuracy"} <= set(rows[0])
    assert 0 < float(rows[0]["dann_lambda"]) < float(rows[1]["dann_lambda"]) < 1


@pytest.mark.slow
def test_distill_recipe_runs_from_the_cli(tmp_path, monkeypatch):
    teacher = train(
        compose(
            [
                "dataset=digits",
                *(a for a in TINY if a.startswith("model")),
                *CPU,
                "trainer.epochs=1",
                "trainer.limit_train_batches=2",
            ]
        ),
        run_dir=tmp_path / "teacher",
    ).run_dir
    student = tmp_path / "student"
    args = ["experiment=distill_digits", f"teacher={teacher}", "trainer.epochs=1", *CPU]
    monkeypatch.chdir(tmp_path)
    assert (
        cli.main(["train", *args, "trainer.limit_train_batches=3", f"output_root={student}"]) == 0
    )
    summary = _summary(student)
    assert summary["method"] == "distill" and summary["model"] == "lenet"
    rows = _metrics(next(student.rglob("metrics.csv")).parent)
    assert float(rows[0]["distill_kl"]) > 0


def test_list_and_help_show_the_methods(capsys):
    from imgcls.cli import main

    assert main(["list", "method"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("dann", "distill", "standard"))
    cfg = compose(["method=dann", "dataset@method.target_dataset=synthetic"])
    assert cfg.method.target_dataset.name == "synthetic"
    assert compose([]).finetune.freeze == "none"


def test_transfer_modes_compare_in_a_leaderboard(tmp_path, source_run, capsys):
    from imgcls.cli import main

    modes = [
        [],
        [f"finetune.from={source_run}", "finetune.freeze=backbone"],
        [f"finetune.from={source_run}", "regularizer=[l2sp]"],
    ]
    for index, mode in enumerate(modes):
        overrides = [*PLAIN, "trainer.epochs=1", *mode]
        train(compose(overrides), run_dir=tmp_path / f"run{index}", overrides=mode)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[l2sp]" in out and "backbone" in out and "3 configurations" in out
    assert "[l2sp]" in (tmp_path / "leaderboard.md").read_text()
