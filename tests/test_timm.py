"""model=timm: any timm architecture, sized from the data; weights only from local files."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import torch
from conftest import CPU

timm = pytest.importorskip(
    "timm", reason="timm is the optional extra imgcls[timm] (make setup installs it)"
)

from safetensors.torch import save_file  # noqa: E402  (after the skip: both come with the extra)

import imgcls.app.components  # noqa: E402, F401  (registers the models)
from imgcls import cli  # noqa: E402
from imgcls.app.job import train  # noqa: E402
from imgcls.base.errors import UserError  # noqa: E402
from imgcls.config.compose import compose  # noqa: E402
from imgcls.registry import MODELS  # noqa: E402

# A convnet, a vision transformer and a conv/attention hybrid (CoAtNet: MBConv then attention).
ARCHS = ["convnext_atto", "vit_tiny_patch16_224", "coatnet_nano_rw_224"]
INPUTS = [(1, 32), (3, 224)]


def build(arch: str, classes: int, channels: int, size: int, **options):
    return MODELS.build(
        "timm",
        {"variant": arch, **options},
        num_classes=classes,
        in_channels=channels,
        image_size=(size, size),
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("channels", "size"), INPUTS, ids=["1x32x32", "3x224x224"])
def test_builds_for_the_data_on_the_meta_device(arch, channels, size):
    with torch.device("meta"):
        model = build(arch, 7, channels, size)
        logits = model(torch.zeros(2, channels, size, size))
    assert logits.shape == (2, 7)
    assert model.get_classifier().out_features == 7
    stem = dict(model.named_modules())[model.pretrained_cfg["first_conv"]]
    assert stem.in_channels == channels
    if hasattr(model, "patch_embed"):  # the ViT takes the data's image size
        assert tuple(model.patch_embed.img_size) == (size, size)


def test_drop_rates_reach_the_model():
    with torch.device("meta"):
        model = build("vit_tiny_patch16_224", 7, 3, 32, drop_rate=0.1, drop_path_rate=0.2)
        default = build("vit_tiny_patch16_224", 7, 3, 32)
    assert model.head_drop.p == pytest.approx(0.1)
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)  # linear up to the rate
    assert isinstance(default.blocks[-1].drop_path1, torch.nn.Identity)  # null: timm's own (0)


def test_unknown_arch_is_one_line_with_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'convnext_atto'") as error:
        build("convnxt_atto", 7, 3, 32)
    assert "\n" not in str(error.value) and "imgcls list models --source timm" in str(error.value)


def test_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'imgcls\[timm\]'") as error:
        build("resnet18", 7, 3, 32)
    assert "\n" not in str(error.value)


def test_an_input_too_small_is_one_line():
    with pytest.raises(UserError, match="cannot take a 3x8x8 input"):
        build("vit_tiny_patch16_224", 7, 3, 8)
    # MaxViT's windows end as a division by zero inside timm on a 28x28 input
    with pytest.raises(UserError, match="test_maxvit cannot take a 1x28x28 input"):
        build("test_maxvit", 10, 1, 28)


def test_an_option_the_arch_refuses_is_one_line():
    with pytest.raises(UserError, match="timm model vgg11 refuses an option .*drop_path_rate"):
        build("vgg11", 7, 3, 32, drop_path_rate=0.1)


@pytest.fixture(scope="module")
def donor(tmp_path_factory):
    """A randomly initialised convnext_atto (3 channels, 7 classes) saved as a state dict."""
    torch.manual_seed(0)
    model = build("convnext_atto", 7, 3, 32)
    torch.nn.init.normal_(model.get_classifier().bias)  # timm starts it at zero: tell them apart
    path = tmp_path_factory.mktemp("weights") / "convnext_atto.pth"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, path)  # timm's train.py checkpoint layout
    return path, state


def _assert_loaded_but_head(model, state):
    own = model.state_dict()
    body = [k for k in state if not k.startswith("head.fc.")]
    assert all(torch.equal(own[k], state[k]) for k in body)
    for key in ("head.fc.weight", "head.fc.bias"):  # same shape (7 classes), still not loaded
        assert own[key].shape == state[key].shape and not torch.equal(own[key], state[key])


def test_a_state_dict_file_loads_what_fits_never_the_head(donor, caplog):
    path, state = donor
    torch.manual_seed(1)
    with caplog.at_level(logging.INFO, logger="imgcls"):
        model = build("convnext_atto", 7, 3, 32, weights=str(path))
    _assert_loaded_but_head(model, state)
    assert f"loaded {len(state) - 2}/{len(state)} tensors from {path}" in caplog.text
    assert model.pretrained_input.mean == (0.485, 0.456, 0.406)  # convnext_atto's own config


def test_a_safetensors_file_for_one_channel_sums_the_rgb_stem(donor, tmp_path):
    path, state = donor
    file = tmp_path / "convnext_atto.safetensors"
    save_file(state, str(file))
    torch.manual_seed(1)
    model = build("convnext_atto", 7, 1, 32, weights=str(file))
    stem = model.state_dict()["stem.0.weight"]
    assert torch.allclose(stem, state["stem.0.weight"].sum(dim=1, keepdim=True))  # timm's rule
    assert torch.equal(
        model.state_dict()["stages.3.blocks.1.mlp.fc2.weight"],
        state["stages.3.blocks.1.mlp.fc2.weight"],
    )


def test_a_file_that_fits_nothing_is_one_line(donor):
    path, _ = donor
    with pytest.raises(UserError, match="holds no tensor that fits timm model vit_tiny"):
        build("vit_tiny_patch16_224", 7, 3, 32, weights=str(path))


def _fake_hub_cache(root, repo: str, state: dict) -> None:
    """The Hugging Face cache layout: refs/main names a snapshot that holds the file."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(state, str(folder / "snapshots" / ("0" * 40) / "model.safetensors"))


def test_pretrained_reads_the_hugging_face_cache_offline(donor, tmp_path, monkeypatch):
    from huggingface_hub import constants

    _, state = donor
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError) as error:  # nothing cached yet
        build("convnext_atto", 7, 3, 32, pretrained=True)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "hf download timm/convnext_atto.d2_in1k" in message
    _fake_hub_cache(tmp_path, "timm/convnext_atto.d2_in1k", state)
    model = build("convnext_atto", 7, 3, 32, pretrained=True)
    _assert_loaded_but_head(model, state)


def test_weights_and_pretrained_together_are_refused():
    with pytest.raises(UserError, match="model.weights=w.pth and pretrained=true"):
        build("resnet18", 7, 3, 32, weights="w.pth", pretrained=True)


def test_cli_unknown_arch_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "model=timm", "model.variant=vit_tiny_patch16_22", *CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'vit_tiny_patch16_224'" in err


def test_the_architecture_as_model_name_points_to_model_variant(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "model=timm", "model.name=convnext_atto", *CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "architecture is chosen with model.variant=convnext_atto" in err
    assert not (tmp_path / "outputs").exists()


def test_fine_tunes_from_a_local_file_with_the_pretrained_normalisation(tmp_path):
    donor = build("test_convnext", 3, 3, 32)
    weights = tmp_path / "donor.safetensors"
    save_file(donor.state_dict(), str(weights))
    overrides = [
        "model=timm",
        "model.variant=test_convnext",
        f"model.weights={weights}",
        "dataset=synthetic",
        "dataset.num_samples=96",
        "dataset.image_size=32",
        "dataset.channels=3",
        "dataset.num_classes=3",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        *CPU,
    ]
    result = train(compose(overrides), tmp_path / "run")
    assert result.summary["status"] == "completed"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["mean"] == [0.5, 0.5, 0.5]  # test_convnext's pretrained config
    assert summary["data"]["std"] == [0.5, 0.5, 0.5]
    assert summary["versions"]["timm"] == timm.__version__
    weights.unlink()  # eval rebuilds the model from the checkpoint alone
    assert cli.main(["eval", f"run={tmp_path / 'run'}", "device=cpu"]) == 0
    best = tmp_path / "run" / "checkpoints" / "best.pt"  # an imgcls checkpoint as weights
    trained = torch.load(best, weights_only=True)["model"]
    model = build("test_convnext", 5, 3, 32, weights=str(best))
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in trained.items() if not k.startswith("head.fc"))


def test_list_models_source_timm_shows_weights_and_facts(capsys):
    assert cli.main(["list", "models", "--source", "timm", "convnext_at*"]) == 0
    listed = capsys.readouterr().out
    assert "convnext_atto " in listed and "d2_in1k" in listed and "convnext_atto_rms" in listed
    args = ["list", "models", "--source", "timm", "convnext_atto", "--input", "1x32x32"]
    assert cli.main([*args, "--classes", "7"]) == 0
    facts = capsys.readouterr().out
    assert "3,375,487" in facts and "22.2 M" in facts  # parameters for 1 channel and 7 classes


def test_list_models_source_errors_are_one_line(capsys):
    assert cli.main(["list", "models", "--source", "tim"]) == 2
    assert "did you mean 'timm'" in capsys.readouterr().err
    assert cli.main(["list", "models", "--source", "timm", "nothing_like_this*"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_no_installed_distribution_ships_a_top_level_tests_package():
    """A wheel with a top-level ``tests`` package (iterative-stratification had one) shadows
    this suite's ``tests.conftest``; timm's ships only ``timm/``."""
    from importlib import metadata

    offenders = sorted(
        {
            dist.metadata["Name"]
            for dist in metadata.distributions()
            for file in dist.files or ()
            if file.parts and file.parts[0] == "tests"
        }
    )
    assert offenders == []
    assert all(f.parts[0].startswith("timm") for f in metadata.distribution("timm").files)


def test_kwargs_reach_create_model_and_imgcls_keys_are_refused():
    model = build("convnext_atto", 10, 1, 28, kwargs={"patch_size": 1})
    assert model.stem[0].stride == (1, 1)  # timm's default stem has stride 4: 28 -> 7
    with pytest.raises(UserError, match=r"model.kwargs=.*num_classes is set by imgcls"):
        build("convnext_atto", 10, 1, 28, kwargs={"num_classes": 3})
    with pytest.raises(UserError, match="refuses an option .*check model.kwargs"):
        build("convnext_atto", 10, 1, 28, kwargs={"bogus": 3})
