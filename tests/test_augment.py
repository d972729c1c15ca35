"""What each transform does to a batch, and that every image in a batch gets its own draw."""

from __future__ import annotations

import pytest
import torch

from imgcls.data import transforms as T
from imgcls.data.augment import Pipeline
from imgcls.data.loader import DeviceLoader
from imgcls.data.mixing import BatchMix
from imgcls.data.per_sample import per_sample_transform
from imgcls.data.splits import ImageSet


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(n: int = 16, c: int = 3, size: int = 8) -> torch.Tensor:
    """Images with distinct pixels, so every shift and flip is visible."""
    x = torch.arange(c * size * size, dtype=torch.float32).view(1, c, size, size)
    return (x / x.max()).repeat(n, 1, 1, 1)


def test_hflip_and_vflip_flip():
    x = torch.rand(6, 3, 5, 7)
    assert torch.equal(Pipeline(hflip=1.0)(x, gen()), x.flip(-1))
    assert torch.equal(Pipeline(vflip=1.0)(x, gen()), x.flip(-2))
    assert torch.equal(Pipeline(hflip=0.0)(x, gen()), x)


def test_flip_probability_is_per_image():
    x = ramp(400)
    out = Pipeline(hflip=0.5)(x, gen())
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 150 < int(flipped.sum()) < 250


def test_crop_keeps_the_shape_and_shifts_each_image_differently():
    x = ramp(64)
    out = Pipeline(crop={"p": 1.0, "padding": 2})(x, gen())
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x[0], (2, 2, 2, 2))
    windows = {(dy, dx): padded[:, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)}
    offsets = set()
    for image in out:
        match = [k for k, w in windows.items() if torch.equal(w, image)]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 10  # one draw per image, not one per batch


def test_uint8_fast_path_matches_crop_then_flip():
    x = (ramp(32) * 255).round().to(torch.uint8)
    out = Pipeline(crop={"p": 1.0, "padding": 3}, hflip=0.5, vflip=0.5).batch(x, gen())
    padded = torch.nn.functional.pad(x[0], (3, 3, 3, 3))
    for image in out:
        candidates = [
            w.flip(dims) if dims else w
            for dy in range(7)
            for dx in range(7)
            for w in [padded[:, dy : dy + 8, dx : dx + 8].float() / 255]
            for dims in ((), (-1,), (-2,), (-2, -1))
        ]
        assert any(torch.equal(image, c) for c in candidates)


def test_brightness_scales_each_image_within_its_range():
    x = torch.full((200, 3, 4, 4), 0.5)
    out = Pipeline(color={"p": 1.0, "brightness": 0.4})(x, gen())
    factors = out[:, 0, 0, 0] / 0.5
    assert torch.allclose(out, factors.view(-1, 1, 1, 1) * 0.5)  # one factor per image
    assert float(factors.min()) >= 0.6 - 1e-6 and float(factors.max()) <= 1.4 + 1e-6
    assert float(factors.std()) > 0.1


def test_contrast_saturation_grayscale_and_hue_match_torchvision():
    from torchvision.transforms.v2 import functional as F

    x = torch.rand(4, 3, 6, 6)
    shift = torch.tensor([0.1, -0.2, 0.45, 0.0])
    ours = T.adjust_hue(x, shift[:, None, None])
    for i in range(4):
        assert torch.allclose(ours[i], F.adjust_hue(x[i], float(shift[i])), atol=1e-5)
    gray = Pipeline(grayscale=1.0)(x, gen())
    assert torch.allclose(gray, F.rgb_to_grayscale(x, 3), atol=1e-6)
    out = T.color_jitter(x, 0, 0.5, 0, 0, None, gen(3))
    factor = gen(3)  # same draw as inside: uniform in [0.5, 1.5]
    f = torch.rand(4, generator=factor) * 1.0 + 0.5
    for i in range(4):
        assert torch.allclose(out[i], F.adjust_contrast(x[i], float(f[i])), atol=1e-5)


def test_affine_and_resized_crop_keep_shape_and_identity_when_off():
    x = torch.rand(8, 3, 16, 16)
    moved = Pipeline(
        affine={"p": 1.0, "degrees": 30.0, "translate": [0.2, 0.2], "scale": [0.8, 1.2]}
    )
    assert moved(x, gen()).shape == x.shape
    assert not torch.allclose(moved(x, gen()), x)
    still = Pipeline(affine={"p": 1.0})(x, gen())  # zero rotation, shift and zoom
    assert torch.allclose(still, x, atol=1e-5)
    whole = Pipeline(resized_crop={"p": 1.0, "scale": [1.0, 1.0], "ratio": [1.0, 1.0]})(x, gen())
    assert torch.allclose(whole, x, atol=1e-5)


def test_erasing_fills_one_rectangle_per_image():
    x = torch.ones(50, 1, 20, 20)
    out = Pipeline(erasing={"p": 1.0, "scale": [0.1, 0.1], "ratio": [1.0, 1.0], "value": 0.0})(
        x, gen()
    )
    erased = (out == 0).flatten(1).sum(1)
    assert bool((erased == 36).all())  # round(sqrt(0.1 * 400)) = 6 -> a 6x6 square
    corners = {tuple((out[i, 0] == 0).nonzero()[0].tolist()) for i in range(50)}
    assert len(corners) > 20


def test_mixup_targets_sum_to_one_and_match_the_blend():
    images = torch.stack([torch.full((1, 4, 4), float(i)) for i in range(6)])
    labels = torch.arange(6)
    mixed, targets = BatchMix(mixup_alpha=0.4)(images, labels, 6, gen())
    assert targets.shape == (6, 6)
    assert torch.allclose(targets.sum(1), torch.ones(6))
    lam = float(targets[0, 0])
    assert torch.allclose(mixed[0], lam * images[0] + (1 - lam) * images[5])


def test_cutmix_label_weight_equals_pasted_area():
    for seed in range(10):
        images = torch.stack([torch.full((3, 10, 10), float(i)) for i in range(4)])
        mixed, targets = BatchMix(cutmix_alpha=1.0)(images, torch.arange(4), 4, gen(seed))
        pasted = float((mixed[0] == 3.0).all(0).float().mean())  # partner of 0 is image 3
        assert targets[0, 3].item() == pytest.approx(pasted)
        assert targets[0, 0].item() == pytest.approx(1 - pasted)
        assert torch.allclose(targets.sum(1), torch.ones(4))


def test_mixing_stops_after_stop_epoch_and_engine_gets_hard_labels_again():
    data = ImageSet(torch.randint(0, 255, (20, 1, 4, 4), dtype=torch.uint8), torch.arange(20) % 2)
    augment = Pipeline(mix={"mixup_alpha": 0.2, "stop_epoch": 2})
    loader = DeviceLoader(data, 10, (0.5,), (0.5,), augment=augment, generator=gen(), num_classes=2)
    loader.set_epoch(2)
    assert next(iter(loader))[1].shape == (10, 2)
    loader.set_epoch(3)
    assert next(iter(loader))[1].shape == (10,)


def test_policies_run_per_image_and_are_fixed_by_the_generator():
    x = torch.rand(12, 3, 16, 16)
    for key in ("autoaugment", "randaugment", "trivialaugment", "augmix"):
        pipeline = Pipeline(**{key: {"p": 1.0}})
        a, b = pipeline(x, gen(1)), pipeline(x, gen(1))
        assert a.shape == x.shape and torch.equal(a, b)
    same = ramp(12, size=16)
    out = Pipeline(randaugment={"p": 1.0, "num_ops": 2, "magnitude": 15})(same, gen())
    assert len({o.sum().item() for o in out}) > 6  # different operations per image


def test_per_sample_path_builds_the_same_components():
    pipeline = Pipeline(
        crop={"p": 1.0, "padding": 2},
        hflip=0.5,
        color={"p": 0.8, "brightness": 0.4, "hue": 0.1},
        erasing={"p": 0.5},
        randaugment={"p": 1.0},
    )
    transform = per_sample_transform(pipeline, (8, 8), 3)
    names = repr(transform)
    for part in (
        "RandomCrop",
        "RandomHorizontalFlip",
        "ColorJitter",
        "RandAugment",
        "RandomErasing",
    ):
        assert part in names
    out = transform(torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8))
    assert (
        out.dtype == torch.float32 and out.shape == (3, 8, 8) and 0 <= out.min() <= out.max() <= 1
    )
    flip_only = per_sample_transform(Pipeline(hflip=1.0), (4, 4), 1)
    image = torch.arange(16, dtype=torch.uint8).view(1, 4, 4)
    assert torch.allclose(flip_only(image), image.flip(-1).float() / 255)
