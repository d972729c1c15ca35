"""Fine-tuning modern backbones: layer-wise lr decay, no decay on norms and biases, drop-path,
freezing by stages and the two family-group recipes (issue 25, point 3)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CPU, TINY
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from imgcls import cli
from imgcls.app.build import build_optimizer
from imgcls.base.errors import OptionError, UserError
from imgcls.config.compose import compose
from imgcls.config.options.models import TorchvisionOptions
from imgcls.config.options.optimizers import SgdOptions
from imgcls.registry import MODELS
from imgcls.train.layer_decay import apply_layer_decay, layer_scales
from imgcls.train.optimizers import param_groups
from imgcls.transfer.finetune import FineTune, freeze, scale_backbone_lr, stages


def tiny_vit() -> nn.Module:
    """torchvision's ViT with 3 encoder blocks of width 8 on 8x8 images, patch 4."""
    return VisionTransformer(
        image_size=8, patch_size=4, num_layers=3, num_heads=2, hidden_dim=8, mlp_dim=16
    )


def torchvision_on_meta(variant: str, **options) -> nn.Module:
    with torch.device("meta"):
        return MODELS.build(
            "torchvision",
            {"variant": variant, **options},
            num_classes=7,
            in_channels=1,
            image_size=(32, 32),
        )


def adamw(model: nn.Module, lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model.parameters(), 0.05, False), lr=lr)


def lr_of(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, float]:
    where = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    return {name: where[id(p)] for name, p in model.named_parameters() if id(p) in where}


def test_layer_decay_gives_each_vit_block_its_documented_rate():
    """Stem d^4, encoder blocks d^3, d^2, d (the final norm with the last), head 1 (lr 1)."""
    model = tiny_vit()
    optimizer = adamw(model)
    line = apply_layer_decay(optimizer, model, 0.5)
    lrs = lr_of(optimizer, model)
    assert lrs["class_token"] == lrs["conv_proj.weight"] == lrs["encoder.pos_embedding"] == 0.0625
    assert lrs["encoder.layers.encoder_layer_0.mlp.0.weight"] == 0.125
    assert lrs["encoder.layers.encoder_layer_1.ln_1.bias"] == 0.25
    assert lrs["encoder.layers.encoder_layer_2.self_attention.in_proj_weight"] == 0.5
    assert lrs["encoder.ln.weight"] == 0.5
    assert lrs["heads.head.weight"] == lrs["heads.head.bias"] == 1.0
    assert line == (
        "optimizer.layer_decay=0.5 over layers 0 (stem) .. 4 (head): lr × 0.0625, 0.125, 0.25, 0.5, 1"
    )
    # the groups without weight decay stay without it, layer by layer
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert decay[id(named["encoder.layers.encoder_layer_1.ln_1.bias"])] == 0.0
    assert decay[id(named["encoder.layers.encoder_layer_1.mlp.0.weight"])] == 0.05
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(named)


def test_layer_decay_on_convnext_counts_blocks_across_stages():
    """ConvNeXt-T: stem 0, 18 blocks 1..18 (a downsampling goes with the block after it),
    classifier 19: block b trains at d^(19 - b)."""
    model = torchvision_on_meta("convnext_tiny")
    scales = layer_scales(model, 0.5)
    assert scales["features.0.0.weight"] == 0.5**19
    assert scales["features.1.0.block.0.weight"] == 0.5**18  # stage 1, block 1
    assert scales["features.2.1.weight"] == scales["features.3.0.layer_scale"] == 0.5**15
    assert scales["features.5.8.block.0.weight"] == 0.5**4  # the 9th block of stage 3 is 13
    assert scales["features.7.2.layer_scale"] == 0.5  # the last block, 18
    assert scales["classifier.0.weight"] == scales["classifier.2.bias"] == 1.0


def test_layer_decay_follows_timms_own_grouping():
    """timm models: exactly the multipliers timm's param_groups_layer_decay gives."""
    timm = pytest.importorskip("timm")
    from timm.optim._param_groups import param_groups_layer_decay

    for arch in ("test_vit", "test_convnext"):
        with torch.device("meta"):
            model = timm.create_model(arch, num_classes=5)
        ours = layer_scales(model, 0.7)
        theirs = {}
        names = {id(p): n for n, p in model.named_parameters()}
        for group in param_groups_layer_decay(model, layer_decay=0.7):
            theirs.update({names[id(p)]: group["lr_scale"] for p in group["params"]})
        assert ours == pytest.approx(theirs, rel=1e-12), arch
        assert len(set(theirs.values())) > 5 and max(theirs.values()) == 1.0


def test_warmup_and_cosine_keep_the_ratios_with_other_multipliers():
    """Layer decay, then the backbone multiplier (finetune.backbone_lr_mult): every group's
    rate keeps its ratio to the head's at every step of warmup and cosine."""
    from imgcls.registry import SCHEDULERS

    model = tiny_vit()
    optimizer = adamw(model, lr=0.01)
    apply_layer_decay(optimizer, model, 0.5)
    scale_backbone_lr(optimizer, model, 0.1)
    expected = {n: lr / 0.01 for n, lr in lr_of(optimizer, model).items()}
    assert expected["heads.head.weight"] == 1.0 and expected["class_token"] == 0.0625 * 0.1
    schedule = SCHEDULERS.build(
        "cosine",
        {"warmup_epochs": 1, "warmup_start_factor": 0.1, "lr_min": 0.0},
        optimizer=optimizer,
        steps_per_epoch=4,
        epochs=3,
    )
    for _ in range(10):
        lrs = lr_of(optimizer, model)
        head = lrs["heads.head.weight"]
        assert head > 0
        assert all(lrs[n] == pytest.approx(head * r, rel=1e-9) for n, r in expected.items())
        optimizer.step()
        schedule.step()


@pytest.mark.parametrize("value", [0, 1.5, -0.1])
def test_a_layer_decay_out_of_range_is_one_line(value):
    with pytest.raises(OptionError, match=rf"^layer_decay={value:g} is invalid: use \(0, 1\]"):
        SgdOptions(layer_decay=value)


def test_layer_decay_on_a_model_without_blocks_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *TINY, "optimizer.layer_decay=0.75", "output_root=out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optimizer.layer_decay=0.75 needs a model" in err
    assert "model=simplecnn has none" in err and "convnext_*" in err
    assert not (tmp_path / "out").exists()


def test_layer_decay_through_the_cli_logs_its_multipliers(tmp_path, monkeypatch):
    """timm's small test ViT (6 blocks) trains one epoch with layer decay: train.log names each
    layer's multiplier, and says which recipe fits a transformer; the checkpoint's optimizer
    holds those rates."""
    pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)
    data = [o for o in TINY if not o.startswith("model")]
    argv = ["train", "model=timm", "model.variant=test_vit", *data, "dataset.image_size=32"]
    argv += ["trainer.epochs=1", "optimizer.layer_decay=0.5", "output_root=out"]
    assert cli.main(argv) == 0
    (summary_file,) = (tmp_path / "out").rglob("summary.json")
    log = (summary_file.parent / "train.log").read_text()
    multipliers = "0.007812, 0.01562, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1"
    assert f"optimizer.layer_decay=0.5 over layers 0 (stem) .. 7 (head): lr × {multipliers}" in log
    assert "model.variant=test_vit is a vision transformer" in log
    assert "recipe@_global_=vision_transformer is the one for it" in log
    state = torch.load(summary_file.parent / "checkpoints" / "last.pt", weights_only=True)
    lrs = sorted({g["initial_lr"] for g in state["optimizer"]["param_groups"]})
    assert lrs == pytest.approx([0.001 * 0.5**k for k in range(7, -1, -1)], rel=1e-12)
    summary = json.loads(summary_file.read_text())
    assert summary["hyperparameters"]["optimizer"]["layer_decay"] == 0.5


@pytest.mark.parametrize("model", ["torchvision", "timm"])
def test_the_recipes_take_no_weight_decay_on_norms_and_biases(model):
    """The modern recipes' optimizer groups: decay on kernels and matrices, none on 1-d."""
    cfg = compose([f"model={model}", *CPU])
    assert cfg.recipe == "modern_convnet" and cfg.optimizer.decay_norm_and_bias is False
    model_ = tiny_vit()
    optimizer = build_optimizer(cfg, model_.parameters(), [])
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    for name, param in model_.named_parameters():
        assert decay[id(param)] == (0.0 if param.ndim <= 1 else 0.05), name
    vit = compose([f"model={model}", "recipe@_global_=vision_transformer", *CPU])
    assert (vit.recipe, vit.optimizer.decay_norm_and_bias, vit.trainer.gradient_clip) == (
        "vision_transformer",
        False,
        1.0,
    )
    assert vit.optimizer.name == "adamw" and vit.scheduler.warmup_epochs == 2


def test_drop_path_rate_scales_torchvisions_stochastic_depth():
    from torchvision.ops import StochasticDepth

    model = torchvision_on_meta("convnext_tiny", drop_path_rate=0.4)
    rates = [m.p for m in model.modules() if isinstance(m, StochasticDepth)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.4)
    assert rates[9] == pytest.approx(0.4 * 9 / 17)  # linear in depth, as torchvision's own
    swin = torchvision_on_meta("swin_t", drop_path_rate=0.0)
    assert {m.p for m in swin.modules() if isinstance(m, StochasticDepth)} == {0.0}
    with pytest.raises(UserError, match=r"mobilenet_v3_small has no stochastic depth .*null"):
        torchvision_on_meta("mobilenet_v3_small", drop_path_rate=0.1)
    with pytest.raises(OptionError, match=r"^drop_path_rate=1 is invalid: use \[0, 1\)"):
        TorchvisionOptions(name="torchvision", drop_path_rate=1.0)


def test_freeze_by_stages_on_modern_backbones():
    """ConvNeXt and Swin: the stem, then each stage with the downsampling before it; ViT: the
    stem, then each encoder block; MobileNet: each block of features."""
    convnext = torchvision_on_meta("convnext_tiny")
    assert [label for label, _ in stages(convnext)] == [
        "features.0",
        "features.1",
        "features.2+features.3",
        "features.4+features.5",
        "features.6+features.7",
    ]
    tune = FineTune()
    freeze(convnext, 2, tune)
    assert tune.frozen == ["features.0", "features.1"]
    frozen = {n for n, p in convnext.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in convnext.named_parameters() if n.startswith("features.0.")} | {
        n for n, _ in convnext.named_parameters() if n.startswith("features.1.")
    }
    swin = torchvision_on_meta("swin_t")
    assert [label for label, _ in stages(swin)][-1] == "features.6+features.7+norm"
    vit = tiny_vit()
    freeze(vit, "backbone", FineTune())
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable == {"heads.head.weight", "heads.head.bias"}
    mobilenet = torchvision_on_meta("mobilenet_v3_small")
    assert [label for label, _ in stages(mobilenet)][:3] == [
        "features.0",
        "features.1",
        "features.2",
    ]
    with pytest.raises(UserError, match=r"^finetune.freeze=6 is invalid: this model has 5 stages"):
        freeze(torchvision_on_meta("convnext_tiny"), 6, FineTune())


def test_freeze_by_stages_on_a_timm_model():
    timm = pytest.importorskip("timm")
    model = timm.create_model("test_vit", num_classes=5, img_size=32)
    labels = [label for label, _ in stages(model)]
    assert labels[0] == "cls_token+pos_embed+patch_embed" and labels[-1] == "blocks.5+norm"
    tune = FineTune()
    freeze(model, 3, tune)
    assert tune.frozen == ["cls_token+pos_embed+patch_embed", "blocks.0", "blocks.1"]
    assert not model.cls_token.requires_grad and not model.blocks[1].mlp.fc1.weight.requires_grad
    assert model.blocks[2].mlp.fc1.weight.requires_grad and model.head.weight.requires_grad


def test_a_transformer_with_the_convnet_recipe_is_told_which_recipe_fits():
    from imgcls.config.recipe_groups import recipe_hint

    line = recipe_hint("torchvision", "vit_b_16", "modern_convnet")
    assert line and "recipe@_global_=vision_transformer" in line
    assert recipe_hint("timm", "swin_tiny_patch4_window7_224", "modern_convnet")
    assert recipe_hint("timm", "convnext_atto", "modern_convnet") is None
    assert recipe_hint("torchvision", "vit_b_16", "vision_transformer") is None
    assert recipe_hint("resnet", "vit_b_16", "modern_convnet") is None
