"""Where a modern backbone's blocks are: the layer of every parameter (layer-wise learning-rate
decay) and the stages (``finetune.freeze=N``).

timm models say it themselves (``group_matcher()``, read through timm's ``group_parameters``,
the grouping timm's own layer decay uses). torchvision's Vision Transformer, ConvNeXt and Swin
follow fixed layouts, written here as rules:

- ViT: ``conv_proj``, ``class_token`` and ``encoder.pos_embedding`` are the stem (layer 0),
  ``encoder.layers.encoder_layer_i`` is block i + 1, the final ``encoder.ln`` goes with the
  last block (as timm's ``norm``), ``heads`` is the head.
- ConvNeXt and Swin: ``features.0`` is the stem; the odd ``features.<s>`` hold a stage's
  blocks (``features.<s>.<b>``, numbered 1, 2, ... across stages); the even ones between
  them downsample and go with the first block after them (timm's ``stages.<s>.downsample``);
  Swin's final ``norm`` goes with the last block; the classifier is the head.

Any other model has no such map (None), and the callers refuse in one line naming
:data:`LAYERED_FAMILIES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

LAYERED_FAMILIES = (
    "model=timm (any architecture with a group_matcher) and model=torchvision's vit_*, "
    "convnext_* and swin_* / swin_v2_*"
)

# a stage: its label (for the log) and the parameter names it holds
Stage = tuple[str, list[str]]


def _torchvision_kind(model: nn.Module) -> str | None:
    cls = type(model)
    if not cls.__module__.startswith("torchvision.models"):
        return None
    return {
        "VisionTransformer": "vit",
        "ConvNeXt": "staged",
        "SwinTransformer": "staged",
    }.get(cls.__name__)


def _vit_rule(model: nn.Module) -> Callable[[str], int | None]:
    depth = len(model.encoder.layers)
    stem = ("class_token", "conv_proj.", "encoder.pos_embedding")

    def layer(name: str) -> int | None:
        if name.startswith(stem):
            return 0
        found = re.match(r"encoder\.layers\.encoder_layer_(\d+)\.", name)
        if found:
            return int(found.group(1)) + 1
        if name.startswith("encoder.ln."):
            return depth
        return None  # the head

    return layer


def _staged_rule(model: nn.Module) -> Callable[[str], int | None]:
    prefixes: dict[str, int] = {"features.0.": 0}
    block = 0
    for index, stage in enumerate(model.features):
        if index == 0:
            continue
        if index % 2 == 1:  # a stage's blocks
            for position, _ in enumerate(stage):
                block += 1
                prefixes[f"features.{index}.{position}."] = block
        else:  # the downsampling before the next stage: with its first block
            prefixes[f"features.{index}."] = block + 1
    prefixes["norm."] = block  # Swin's final norm, with the last block

    def layer(name: str) -> int | None:
        for prefix, number in prefixes.items():
            if name.startswith(prefix):
                return number
        return None  # the classifier

    return layer


def layer_ids(model: nn.Module) -> dict[str, int] | None:
    """Every parameter's layer: 0 for the stem, 1, 2, ... for the blocks, the largest for the
    head (and whatever no rule names); None for a model without a known block layout."""
    names = [name for name, _ in model.named_parameters()]
    if hasattr(model, "group_matcher"):  # timm: its own grouping, as its layer decay uses
        from timm.models import group_parameters

        found = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
        last = max(found.values(), default=0)
        return {name: found.get(name, last) for name in names}
    kind = _torchvision_kind(model)
    if kind is None:
        return None
    rule = _vit_rule(model) if kind == "vit" else _staged_rule(model)
    layers = {name: rule(name) for name in names}
    head = max((n for n in layers.values() if n is not None), default=0) + 1
    return {name: head if number is None else number for name, number in layers.items()}


def _label(names: list[str]) -> str:
    """The dotted prefix a group's names share (``stages.1``), else their first parts joined
    with '+' (``cls_token+pos_embed+patch_embed``, ``blocks.5+norm``)."""
    common = names[0].split(".")[:-1] if names else []
    for name in names[1:]:
        parts = name.split(".")
        while common and parts[: len(common)] != common:
            common = common[:-1]
    if common:
        return ".".join(common)
    prefixes: list[str] = []
    for name in names:
        parts = name.split(".")
        keep = 2 if len(parts) > 2 and parts[1].isdigit() else 1
        prefix = ".".join(parts[:keep])
        if prefix not in prefixes:
            prefixes.append(prefix)
    return "+".join(prefixes)


def block_stages(model: nn.Module) -> list[Stage] | None:
    """The backbone's stages in order, the head excluded: timm's coarse groups (stem, then
    each stage or each transformer block); torchvision ViT: the stem, then each encoder
    block; ConvNeXt and Swin: the stem, then each stage with the downsampling before it.
    None for other models (``finetune.stages`` has the generic rule)."""
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        groups = group_parameters(model, model.group_matcher(coarse=True))
        ordered = [groups[key] for key in sorted(groups)]
        if ordered and _last_linear(model) & set(ordered[-1]):
            ordered = ordered[:-1]  # the unmatched group: the head (and its norm)
        return [(_label(names), names) for names in ordered]
    kind = _torchvision_kind(model)
    if kind is None:
        return None
    names = [name for name, _ in model.named_parameters()]
    if kind == "vit":
        rule = _vit_rule(model)
        depth = len(model.encoder.layers)
        labels = ["conv_proj+class_token+encoder.pos_embedding"]
        labels += [f"encoder.layers.encoder_layer_{i}" for i in range(depth)]
        labels[-1] += "+encoder.ln"
        return [(labels[i], [n for n in names if rule(n) == i]) for i in range(depth + 1)]
    # ConvNeXt / Swin: a stage is features.<odd> with the downsampling features.<even> before it
    stages: list[Stage] = []
    for index, _ in enumerate(model.features):
        if index % 2 == 0 and index > 0:
            continue
        members = (f"features.{index}.",)
        if index > 1:
            members = (f"features.{index - 1}.", f"features.{index}.")
        if index == len(model.features) - 1:
            members = (*members, "norm.")
        held = [n for n in names if n.startswith(members)]
        stages.append(("+".join(m.rstrip(".") for m in members if _any(names, m)), held))
    return stages


def _any(names: list[str], prefix: str) -> bool:
    return any(n.startswith(prefix) for n in names)


def _last_linear(model: nn.Module) -> set[str]:
    """The parameter names of the last nn.Linear: the classifier head."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return set()
    name, module = linears[-1]
    return {f"{name}.{key}" for key, _ in module.named_parameters()}
