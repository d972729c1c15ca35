"""Schedulers, regularizers, optimizers and trainer options, each checked by its behaviour."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from conftest import TINY
from torch import nn

from imgcls.app import build
from imgcls.app.job import seed_everything, train
from imgcls.base.checkpoint import inference_state, load_checkpoint
from imgcls.base.errors import UserError
from imgcls.base.runs import RunDirectory
from imgcls.config.compose import compose
from imgcls.config.options.regularizers import DropoutOptions, L1Options
from imgcls.config.options.trainer import TrainerOptions
from imgcls.data.loader import DeviceLoader
from imgcls.data.splits import ImageSet
from imgcls.train import engine as engine_module
from imgcls.train.early_stopping import EarlyStopping
from imgcls.train.ema import ModelEma
from imgcls.train.engine import Engine, evaluate
from imgcls.train.regularizers import L1, Dropout


def rows(run_dir) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


# -- schedulers: the logged lr of each epoch against the formula, warmup included ----------
LR0, W, EPOCHS, S0 = 0.1, 2, 6, 0.1  # base rate, warmup epochs, epochs, warmup start factor


def _warm(t: float, after) -> float:
    if t < W:
        return LR0 * (S0 + (1 - S0) * t / W)
    return after(t - W, EPOCHS - W)


def _onecycle(tau: float, T: float, pct=0.3, div=25.0, final=1e4) -> float:
    p, start, end = tau / T, 1 / div, 1 / (div * final)
    if p < pct:
        return LR0 * (start + (1 - start) * (1 - math.cos(math.pi * p / pct)) / 2)
    q = (p - pct) / (1 - pct)
    return LR0 * (end + (1 - end) * (1 + math.cos(math.pi * q)) / 2)


SCHEDULES = {
    "constant": ([], lambda tau, T: LR0),
    "step": (
        ["scheduler.step_size=1", "scheduler.gamma=0.5"],
        lambda tau, T: LR0 * 0.5 ** int(tau),
    ),
    "multistep": (
        ["scheduler.milestones=[1,3]", "scheduler.gamma=0.1"],
        lambda tau, T: LR0 * 0.1 ** sum(m <= tau for m in (1, 3)),
    ),
    "cosine": (
        ["scheduler.lr_min=0.01"],
        lambda tau, T: 0.01 + 0.5 * (LR0 - 0.01) * (1 + math.cos(math.pi * tau / T)),
    ),
    "exponential": (
        [f"scheduler.gamma={math.exp(-0.5)}"],
        lambda tau, T: LR0 * math.exp(-0.5 * tau),
    ),
    "onecycle": ([], _onecycle),
}

SCHEDULE_RUN = [
    *TINY,
    f"trainer.epochs={EPOCHS}",
    "trainer.limit_train_batches=2",
    f"optimizer.lr={LR0}",
    f"scheduler.warmup_epochs={W}",
]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_logged_lr_follows_the_schedule_formula_with_warmup(tmp_path, name):
    options, formula = SCHEDULES[name]
    result = train(compose([*SCHEDULE_RUN, f"scheduler={name}", *options]), tmp_path)
    logged = [(int(r["epoch"]), float(r["lr"]), int(r["step"])) for r in rows(result.run_dir)]
    assert [s for _, _, s in logged] == [2 * e for e in range(1, EPOCHS + 1)]
    for epoch, lr, _ in logged:
        assert lr == pytest.approx(_warm(epoch - 1, formula), rel=1e-5), epoch


def test_plateau_lowers_the_rate_when_the_metric_stalls(tmp_path):
    overrides = ["scheduler=plateau", "scheduler.patience=0", "scheduler.factor=0.5"]
    result = train(compose([*SCHEDULE_RUN, *overrides]), tmp_path)
    logged = rows(result.run_dir)
    best, scale = None, 1.0
    for index, row in enumerate(logged):
        t = index
        expected = LR0 * (S0 + (1 - S0) * t / W) if t < W else LR0 * scale
        assert float(row["lr"]) == pytest.approx(expected, rel=1e-5)
        value = float(row["val_accuracy"])
        if index + 1 > W:  # the plateau counts epochs after the warmup
            if best is None or value > best + 1e-4:
                best = value
            else:
                scale *= 0.5
    assert float(logged[-1]["lr"]) < LR0  # the metric did stall at least once


def test_a_warmup_as_long_as_the_run_is_cut_to_half_the_run():
    """``trainer.epochs=1`` with a recipe's one-epoch warmup still warms up and decays."""
    cfg = compose([*TINY, "scheduler=cosine", "scheduler.warmup_epochs=2"])
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = build.build_scheduler(cfg, optimizer, 4, 2)  # 4 steps per epoch, 2 epochs
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert scheduler.warmup_epochs == 1.0
    assert rates[0] == pytest.approx(0.01) and rates[4] == pytest.approx(0.1)  # peak at t = 1
    assert rates[7] < rates[4]  # then the cosine decays


def test_scheduler_rejects_a_negative_warmup():
    cfg = compose([*TINY, "scheduler.warmup_epochs=-1"])
    with pytest.raises(UserError, match=r"scheduler.warmup_epochs=-1 is invalid"):
        model = nn.Linear(2, 2)
        build.build_scheduler(cfg, torch.optim.SGD(model.parameters(), lr=0.1), 3, 2)


# -- regularizers by hand on a tiny model ----------------------------------------------------
def _tiny_engine(tmp_path, model, **kwargs) -> Engine:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 1, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loader = DeviceLoader(ImageSet(images, labels), 6, (0.0,), (1.0,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    run = RunDirectory(tmp_path)
    return Engine(
        model, optimizer, scheduler, loader, loader, run, TrainerOptions(epochs=1), **kwargs
    )


def test_l1_and_label_smoothing_losses_match_a_hand_computation(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    start = [p.detach().clone() for p in model.parameters()]
    alpha, strength = 0.2, 0.01
    engine = _tiny_engine(
        tmp_path, model, label_smoothing=alpha, regularizers=[L1(L1Options(strength=strength))]
    )
    x = engine.train_loader.data.images.float() / 255
    y = engine.train_loader.data.labels

    weight, bias = (p.clone().requires_grad_(True) for p in start)
    log_p = torch.log_softmax(x.flatten(1) @ weight.T + bias, dim=1)
    smoothed = -((1 - alpha) * log_p[torch.arange(6), y] + alpha * log_p.mean(1)).mean()
    l1 = strength * (weight.abs().sum() + bias.abs().sum())
    (smoothed + l1).backward()

    metrics = engine.train_epoch(1)
    assert metrics["train_loss"] == pytest.approx(smoothed.item(), rel=1e-6)
    assert metrics["l1_loss"] == pytest.approx(l1.item(), rel=1e-6)
    # the step used the gradient of cross-entropy + L1 term: w1 = w0 - lr * grad
    assert torch.allclose(model[1].weight, start[0] - 0.5 * weight.grad, atol=1e-6)
    assert torch.allclose(model[1].bias, start[1] - 0.5 * bias.grad, atol=1e-6)


def test_dropout_regularizer_sets_every_dropout_layer():
    cfg = compose([*TINY, "regularizer=[dropout]", "regularizer.dropout.rate=0.2"])
    data = build.build_dataset(cfg)
    model = build.build_model(cfg, data)
    (regularizer,) = build.build_regularizers(cfg)
    regularizer.configure(model, "simplecnn")
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert layers and all(m.p == 0.2 for m in layers)
    with pytest.raises(UserError, match="has no dropout layer"):
        Dropout(DropoutOptions(rate=0.2)).configure(nn.Linear(2, 2), "linear")


def test_weight_decay_skips_norm_and_bias_unless_asked():
    cfg = compose(["model.variant=resnet18", "dataset=synthetic", "dataset.image_size=8"])
    model = build.build_model(cfg, build.build_dataset(cfg))
    groups = build.build_optimizer(cfg, model.parameters(), []).param_groups
    assert [g["weight_decay"] for g in groups] == [cfg.optimizer.weight_decay, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"])
    assert all(p.ndim <= 1 for p in groups[1]["params"])
    both = compose(["dataset=synthetic", "optimizer.decay_norm_and_bias=true"])
    assert len(build.build_optimizer(both, model.parameters(), []).param_groups) == 1


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_trains(tmp_path, name):
    result = train(compose([*TINY, f"optimizer={name}", "trainer.epochs=1"]), tmp_path)
    assert result.summary["status"] == "completed"


# -- EMA, early stopping, accumulation, clipping, top-k, limits -------------------------------
def test_ema_follows_its_update_rule():
    model = nn.Linear(3, 2)
    ema = ModelEma(model, decay=0.9)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    expected = 0.9 * w0 + 0.1 * model.weight.detach()
    assert torch.allclose(ema.module.weight, expected)
    with torch.no_grad():
        model.weight.mul_(-2.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, 0.9 * expected + 0.1 * model.weight.detach())


def test_validation_and_best_checkpoint_use_the_ema_weights(tmp_path):
    cfg = compose([*TINY, "trainer.ema.decay=0.8", "trainer.epochs=2"])
    result = train(cfg, tmp_path)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert not torch.equal(
        best["ema"]["model"]["features.0.weight"], best["model"]["features.0.weight"]
    )
    data = build.build_dataset(cfg)
    model = build.build_model(cfg, data)
    model.load_state_dict(inference_state(best))
    val = evaluate(model, DeviceLoader(data.val, 512, data.mean, data.std))
    row = rows(result.run_dir)[best["best"]["epoch"] - 1]
    assert float(row["val_loss"]) == pytest.approx(val["loss"], rel=1e-5)


def test_early_stopping_on_a_constructed_sequence():
    stopper = EarlyStopping("val_accuracy", "max", patience=2, min_delta=0.01)
    sequence = [0.5, 0.6, 0.605, 0.7, 0.69, 0.705, 0.9]
    stops = [stopper.update(v) for v in sequence]
    assert stops.index(True) == 5  # 0.69 and 0.705 do not beat 0.7 by more than 0.01
    low = EarlyStopping("val_loss", "min", patience=1)
    assert [low.update(v) for v in (1.0, 0.9, 0.95)] == [False, False, True]


def test_engine_stops_early_at_the_right_epoch(tmp_path, monkeypatch):
    sequence = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.9])

    def fake_evaluate(*args, **kwargs):
        return {"loss": 1.0, "accuracy": next(sequence)}

    monkeypatch.setattr(engine_module, "evaluate", fake_evaluate)
    overrides = ["trainer.epochs=6", "trainer.early_stopping.patience=2"]
    result = train(compose([*TINY, *overrides]), tmp_path)
    assert [int(r["epoch"]) for r in rows(tmp_path)] == [1, 2, 3, 4]
    assert result.summary["stopped_early"] == 4 and result.summary["best"]["epoch"] == 2


def test_accumulated_batches_equal_one_large_batch(tmp_path):
    common = [*TINY, "model.dropout=0.0", "augment=none", "trainer.epochs=2"]
    small = train(
        compose([*common, "trainer.batch_size=8", "trainer.accumulate_batches=4"]), tmp_path / "a"
    )
    large = train(compose([*common, "trainer.batch_size=32"]), tmp_path / "b")
    for a, b in zip(rows(small.run_dir), rows(large.run_dir), strict=True):
        assert a["step"] == b["step"] and a["lr"] == b["lr"]
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
    wa, wb = (
        load_checkpoint(r.run_dir / "checkpoints" / "last.pt")["model"] for r in (small, large)
    )
    for key in wa:
        assert torch.allclose(wa[key], wb[key], atol=1e-5), key


@pytest.mark.parametrize("mode", ["value", "norm"])
def test_gradient_clipping_bounds_the_update(tmp_path, mode):
    clip = 1e-3
    overrides = [
        *TINY,
        "trainer.epochs=1",
        "trainer.limit_train_batches=1",
        "scheduler=constant",
        "scheduler.warmup_epochs=0",
        "optimizer=sgd",
        "optimizer.lr=1.0",
        "optimizer.momentum=0.0",
        "optimizer.nesterov=false",
        "optimizer.weight_decay=0.0",
        "regularizer=none",
        f"trainer.gradient_clip={clip}",
        f"trainer.gradient_clip_mode={mode}",
    ]
    cfg = compose(overrides)
    seed_everything(cfg.seed)
    start = build.build_model(cfg, build.build_dataset(cfg)).state_dict()
    train(cfg, tmp_path)
    end = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"]
    deltas = torch.cat([(end[k] - start[k]).flatten() for k in start])
    if mode == "value":
        assert deltas.abs().max() == pytest.approx(clip, rel=1e-3)
    else:
        assert deltas.norm() == pytest.approx(clip, rel=1e-3)


def test_top_k_checkpoints_are_the_best_epochs(tmp_path):
    train(compose([*TINY, "trainer.epochs=4", "trainer.save_top_k=2"]), tmp_path)
    logged = rows(tmp_path)
    ranked = sorted(logged, key=lambda r: (-float(r["val_accuracy"]), int(r["epoch"])))
    wanted = {f"epoch_{int(r['epoch']):03d}.pt" for r in ranked[:2]}
    assert {p.name for p in (tmp_path / "checkpoints").glob("epoch_*.pt")} == wanted
    for name in wanted:
        epoch = int(name[6:9])
        assert load_checkpoint(tmp_path / "checkpoints" / name)["epoch"] == epoch


def test_fast_dev_run_is_one_training_and_one_validation_batch(tmp_path):
    result = train(compose([*TINY, "trainer.fast_dev_run=true", "trainer.epochs=5"]), tmp_path)
    assert [(r["epoch"], r["step"]) for r in rows(tmp_path)] == [("1", "1")]
    assert result.summary["status"] == "completed"


@pytest.mark.parametrize(
    "option", ["trainer.precision=bf16", "trainer.precision=16", "trainer.channels_last=true"]
)
def test_precision_and_memory_format_options_train(tmp_path, option):
    result = train(compose([*TINY, option, "trainer.epochs=1"]), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and math.isfinite(result.summary["test"]["loss"])
