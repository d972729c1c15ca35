"""The airbench-class recipe (issue 14, point 4): each mechanism, and small end-to-end runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from imgcls import cli
from imgcls.app import job
from imgcls.app.job import train
from imgcls.app.validation import validate
from imgcls.base.checkpoint import load_checkpoint
from imgcls.base.errors import UserError
from imgcls.config.compose import compose
from imgcls.data.augment import Pipeline, alternating_flips
from imgcls.data.loader import DeviceLoader
from imgcls.data.per_sample import per_sample_transform
from imgcls.data.splits import ImageSet
from imgcls.models.airbench import AirbenchNet, _Conv
from imgcls.registry import MODELS, OPTIMIZERS, SCHEDULERS
from imgcls.train.lookahead import Lookahead
from imgcls.train.lr_groups import apply_lr_multipliers
from imgcls.train.tta import VIEWS, TestTimeAugment, with_tta

# A CPU-sized airbench: narrow groups, few whitening images.
SMALL = ["model.widths=[8,16,16]", "model.whiten_images=64"]


def small_net(channels: int = 3, size: int = 16, **options) -> AirbenchNet:
    options = {"widths": (8, 16, 16), **options}
    return MODELS.build(
        "airbench", options, num_classes=4, in_channels=channels, image_size=(size, size)
    )


def correlated_images(n: int = 200, channels: int = 3, size: int = 12) -> torch.Tensor:
    """Smooth, colour-correlated random images: far from white, so whitening has work to do."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, 1, size + 1, size + 1, generator=g)
    smooth = (base[..., 1:, 1:] + base[..., :-1, :-1] + base[..., 1:, :-1]) / 3
    mix = torch.rand(1, channels, 1, 1, generator=g) + 0.5
    noise = 0.2 * torch.randn(n, channels, size, size, generator=g)
    return 2.0 * smooth * mix + noise + 0.3


def patch_covariance(outputs: torch.Tensor) -> torch.Tensor:
    flat = outputs.permute(0, 2, 3, 1).reshape(-1, outputs.shape[1]).double()
    flat = flat - flat.mean(0)
    return flat.T @ flat / (flat.shape[0] - 1)


# -- patch whitening ----------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_whitening_makes_the_first_layers_patch_covariance_the_identity(channels):
    images = correlated_images(channels=channels)
    model = small_net(channels, whiten_eps=1e-9)
    conv = model.whiten
    before = patch_covariance(nn.functional.conv2d(images, conv.weight))
    half = conv.weight.shape[0] // 2
    assert not torch.allclose(before[:half, :half], torch.eye(half, dtype=torch.float64), atol=0.1)
    model.initialize_from_data(images)
    outputs = nn.functional.conv2d(images, conv.weight)  # without the (trainable) bias
    assert conv.weight.shape[0] == 2 * channels * 2 * 2
    covariance = patch_covariance(outputs[:, :half])
    assert torch.allclose(covariance, torch.eye(half, dtype=torch.float64), atol=2e-3)
    assert torch.equal(conv.weight[half:], -conv.weight[:half])  # and the negated filters
    assert not conv.weight.requires_grad  # frozen; the bias trains


def test_whitening_eps_damps_the_smallest_directions():
    images = correlated_images()
    model = small_net(whiten_eps=10.0)
    model.initialize_from_data(images)
    half = model.whiten.weight.shape[0] // 2
    variances = patch_covariance(nn.functional.conv2d(images, model.whiten.weight[:half])).diag()
    assert variances.max() < 0.9  # λ / (λ + eps) < 1 for every direction


# -- identity (dirac) initialisation and the network -------------------------------------------
def test_dirac_init_passes_the_input_channels_through():
    torch.manual_seed(0)
    conv = _Conv(4, 6)
    x = torch.randn(2, 4, 5, 5)
    out = conv(x)
    assert torch.allclose(out[:, :4], x, atol=1e-6)
    assert not torch.allclose(out[:, 4:], torch.zeros_like(out[:, 4:]))


def test_network_shapes_norms_and_sizes():
    model = small_net(3, 32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert all(m.momentum == pytest.approx(0.4) and m.eps == 1e-12 for m in norms)
    assert small_net(1, 8)(torch.randn(2, 1, 8, 8)).shape == (2, 4)  # 8x8 digits fit too
    with pytest.raises(UserError, match="model.widths"):
        small_net(widths=(8, 16))


def test_norm_biases_get_their_own_rate_with_the_same_decay_per_step():
    model = small_net()
    optimizer = OPTIMIZERS.build(
        "sgd",
        {"lr": 0.5, "weight_decay": 0.01, "decay_norm_and_bias": True},
        params=model.parameters(),
    )
    apply_lr_multipliers(optimizer, model)
    biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    (fast,) = [g for g in optimizer.param_groups if {id(p) for p in g["params"]} == biases]
    assert fast["lr"] == 0.5 * 64 and fast["weight_decay"] == pytest.approx(0.01 / 64)
    others = [g for g in optimizer.param_groups if g is not fast]
    assert all(g["lr"] == 0.5 and not biases & {id(p) for p in g["params"]} for g in others)
    count = sum(len(g["params"]) for g in optimizer.param_groups)
    assert count == sum(p.requires_grad for p in model.parameters())


# -- alternating flip --------------------------------------------------------------------------
def asymmetric_images(n: int) -> torch.Tensor:
    """uint8 images that differ from their mirror image (and from each other)."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, 4, 6), generator=g, dtype=torch.uint8)


def test_alternating_flip_flips_every_image_in_alternate_epochs():
    n = 400
    images = asymmetric_images(n)
    augment = Pipeline(alternating_flip=True)
    g = torch.Generator().manual_seed(0)
    index = torch.arange(n)
    by_epoch = [augment.batch(images, g, index=index, epoch=e) for e in (1, 2, 3, 4)]
    plain, mirrored = images.float() / 255, images.flip(-1).float() / 255
    flipped = []
    for out in by_epoch:
        is_flipped = (out == mirrored).flatten(1).all(1)
        assert torch.equal(is_flipped, ~(out == plain).flatten(1).all(1))
        flipped.append(is_flipped)
    assert torch.equal(flipped[0], ~flipped[1]) and torch.equal(flipped[1], ~flipped[2])
    assert torch.equal(flipped[0], flipped[2]) and torch.equal(flipped[1], flipped[3])
    assert 0.4 < flipped[0].float().mean() < 0.6  # about half in any one epoch
    assert torch.equal(alternating_flips(index, 1), flipped[0])


def test_alternating_flip_follows_the_image_through_the_shuffled_loader():
    n = 96
    images = asymmetric_images(n)
    data = ImageSet(images, torch.arange(n))  # label = dataset position
    g = torch.Generator().manual_seed(0)
    augment = Pipeline(alternating_flip=True)
    loader = DeviceLoader(data, 32, (0.0,), (1.0,), shuffle=True, augment=augment, generator=g)
    seen = []
    for epoch in (1, 2):
        loader.set_epoch(epoch)
        flipped = torch.zeros(n, dtype=torch.bool)
        for batch, labels in loader:
            flipped[labels] = (batch == images[labels].flip(-1).float() / 255).flatten(1).all(1)
        seen.append(flipped)
    assert torch.equal(seen[0], ~seen[1])


def test_reflect_translation_is_a_window_of_the_reflected_image():
    n = 60
    images = asymmetric_images(n)  # 4x6
    crop = {"p": 1.0, "padding": 2, "padding_mode": "reflect"}
    augment = Pipeline(crop=crop, alternating_flip=True)
    index = torch.arange(n)
    fast = augment.batch(images, torch.Generator().manual_seed(3), index=index, epoch=1)
    slow = augment(images.float() / 255, torch.Generator().manual_seed(3), index, 1)
    padded = nn.functional.pad(images.float(), (2, 2, 2, 2), mode="reflect") / 255
    flips = alternating_flips(index, 1)
    for out in (fast, slow):  # the fused uint8 path and the float path
        offsets = []
        for i in range(n):
            target = out[i].flip(-1) if flips[i] else out[i]
            found = [
                (y, x)
                for y in range(5)
                for x in range(5)
                if torch.equal(target, padded[i, :, y : y + 4, x : x + 6])
            ]
            assert found, i
            offsets += found
        assert len(set(offsets)) > 5  # the offsets vary
    with pytest.raises(UserError, match="padding_mode"):
        Pipeline(crop={"p": 1.0, "padding_mode": "wrap"})


def test_alternating_flip_with_random_flip_or_per_sample_loading_is_refused():
    with pytest.raises(UserError, match="alternating_flip"):
        Pipeline(alternating_flip=True, hflip=0.5)
    with pytest.raises(UserError, match="data.loader=memory"):
        per_sample_transform(Pipeline(alternating_flip=True), (8, 8), 3)


# -- lookahead ---------------------------------------------------------------------------------
def test_lookahead_follows_its_update_rule():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.0)
    lookahead = Lookahead(model, every=2, decay=0.5, power=0.0, total_steps=7)
    slow_weight = model.weight.detach().clone()

    def train_step(value: float) -> None:
        with torch.no_grad():
            model.weight.add_(value)

    train_step(1.0)  # fast = 2
    lookahead.update(model, 1)  # not a lookahead step: nothing changes
    assert torch.allclose(model.weight, torch.full((2, 3), 2.0))
    train_step(1.0)  # fast = 3
    lookahead.update(model, 2)  # slow = 0.5 * 1 + 0.5 * 3 = 2; fast <- slow
    slow_weight = 0.5 * slow_weight + 0.5 * 3.0
    assert torch.allclose(model.weight, slow_weight)
    for step in range(3, 7):
        train_step(1.0)
        fast = model.weight.detach().clone()
        lookahead.update(model, step)
        if step % 2 == 0:
            slow_weight = 0.5 * slow_weight + 0.5 * fast
            assert torch.allclose(model.weight, slow_weight)
        else:
            assert torch.allclose(model.weight, fast)
    train_step(10.0)
    lookahead.update(model, 7)  # the run's last step: the fast weights become the slow ones
    assert torch.allclose(model.weight, slow_weight)


def test_lookahead_state_round_trips():
    model = nn.Linear(2, 2)
    first = Lookahead(model, every=1, decay=0.5, power=0.0, total_steps=10)
    with torch.no_grad():
        model.weight.add_(1.0)
    first.update(model, 1)
    second = Lookahead(nn.Linear(2, 2), every=1, decay=0.5, power=0.0, total_steps=10)
    second.load_state_dict(first.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(first.slow, second.slow, strict=True))


def test_lookahead_decay_ramps_with_the_run():
    lookahead = Lookahead(nn.Linear(1, 1), every=5, decay=0.95**5, power=3.0, total_steps=100)
    assert lookahead.decay_at(0) == 0.0
    assert lookahead.decay_at(50) == pytest.approx(0.95**5 * 0.125)
    assert lookahead.decay_at(100) == pytest.approx(0.95**5)


# -- test-time augmentation --------------------------------------------------------------------
def test_views_are_flips_and_one_pixel_translations():
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).view(2, 1, 4, 5)
    assert torch.equal(VIEWS["hflip"](x), x.flip(-1))
    down_right = VIEWS["down_right"](x)
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(down_right[..., 0, 1:], x[..., 1, :-1])  # reflected border
    up_left = VIEWS["up_left"](x)
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.equal(VIEWS["hflip_up_left"](x), VIEWS["up_left"](x.flip(-1)))


def test_tta_averages_the_views_it_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1 * 4 * 5, 3))
    x = torch.randn(6, 1, 4, 5)
    names = ["identity", "hflip", "down_right"]
    expected = sum(model(VIEWS[v](x)) for v in names) / 3
    assert torch.allclose(TestTimeAugment(model, names)(x), expected, atol=1e-6)
    assert not torch.allclose(TestTimeAugment(model, names[:2])(x), expected, atol=1e-3)
    assert with_tta(model, []) is model
    with pytest.raises(UserError, match="trainer.test_tta view 'vflip'"):
        TestTimeAugment(model, ["vflip"])


# -- schedule and config -----------------------------------------------------------------------
def test_linear_one_cycle_is_airbench_s_schedule():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = SCHEDULERS.build(
        "onecycle",
        {"pct_start": 0.25, "div_factor": 5.0, "final_div_factor": 1 / 0.35, "anneal": "linear"},
        optimizer=optimizer,
        steps_per_epoch=10,
        epochs=10,
    )
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.2) and rates[25] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(0.2 + 0.8 * 10 / 25)
    assert rates[100] == pytest.approx(0.07) and rates[62] == pytest.approx(1 - 0.93 * 37 / 75)


def test_bad_speed_options_fail_while_validating():
    cfg = compose(["experiment=cifar10_speed", "trainer.test_tta=[identity,vflip]"])
    with pytest.raises(UserError, match="vflip"):
        validate(cfg)
    cfg = compose(["experiment=cifar10_speed", "trainer.lookahead.decay=1.5"])
    with pytest.raises(UserError, match="trainer.lookahead.decay"):
        validate(cfg)


@pytest.mark.parametrize("experiment", ["cifar10_speed", "fmnist_speed"])
def test_speed_experiments_compose_to_the_airbench_recipe(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.model.name == "airbench" and cfg.recipe == "airbench"
    assert cfg.augment.alternating_flip and cfg.augment.crop.padding == 2
    assert cfg.regularizer.label_smoothing.alpha == 0.2
    assert cfg.trainer.lookahead.every == 5 and len(cfg.trainer.test_tta) == 6
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.momentum == 0.85
    assert cfg.scheduler.anneal == "linear" and cfg.trainer.channels_last


# -- end to end ---------------------------------------------------------------------------------
def synthetic(num_samples: int = 96) -> list[str]:
    return [
        "dataset=synthetic",
        f"dataset.num_samples={num_samples}",
        "dataset.num_classes=4",
        "dataset.image_size=16",
        "dataset.val_fraction=0.15",
        "trainer.device=cpu",
        "trainer.precision=32",
        "trainer.batch_size=16",
        "trainer.eval_batch_size=64",
        "trainer.epochs=2",
    ]


def test_cifar10_speed_trains_end_to_end_with_every_mechanism(tmp_path, monkeypatch):
    wrapped = []

    def spy(model, views):
        wrapped.append(list(views))
        return with_tta(model, views)

    monkeypatch.setattr(job, "with_tta", spy)
    cfg = compose(["experiment=cifar10_speed", *synthetic(), *SMALL, f"output_root={tmp_path}"])
    result = train(cfg)
    assert wrapped == [list(cfg.trainer.test_tta)]  # the final test averaged the six views
    summary = result.summary
    assert summary["status"] == "completed" and summary["model"] == "airbench"
    assert summary["init_from_data_seconds"] > 0  # the whitening ran, and was timed
    assert math.isfinite(summary["test"]["loss"])
    state = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    slow = state["lookahead"]["slow"]
    assert set(slow) >= {"whiten.weight", "whiten.bias"}
    # The run ended on a lookahead step: the saved weights are the slow weights.
    assert torch.equal(state["model"]["head.weight"], slow["head.weight"])
    log = (result.run_dir / "train.log").read_text()
    assert "model initialised from training images in" in log


@pytest.mark.slow
def test_imgcls_train_cifar10_speed_on_synthetic_through_the_command_line(
    tmp_path, monkeypatch, capsys
):
    """`imgcls train experiment=cifar10_speed ...` as typed, into its default output folder
    (in-process: a second interpreter importing torch only to run the same main() cost 4 s)."""
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "experiment=cifar10_speed", *synthetic(80), *SMALL])
    output = capsys.readouterr()
    assert code == 0, output.err
    (summary_path,) = (tmp_path / "outputs").glob("*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    assert summary["hyperparameters"]["recipe"] == "airbench"
    assert "test accuracy" in output.out
