"""Fine-tuning: load a backbone from an earlier run, a checkpoint or torchvision's weights.

``finetune.from`` names a run directory, a ``.pt`` checkpoint or ``torchvision`` (ImageNet
weights from the local torch hub cache through the zoo's loader). The classifier head is
replaced (kept as freshly initialised) when the class set differs, and every other layer that
does not fit is named in one log line. ``finetune.freeze`` then freezes the backbone, the first
N stages, or nothing; frozen batch-norm layers stay in eval mode whatever mode the model is in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imgcls.base.errors import UserError
from imgcls.data.splits import DataSplits
from imgcls.models.blocks import Stage, block_stages
from imgcls.models.pretrained import load_pretrained
from imgcls.transfer.heads import head_parameter_names, split_head
from imgcls.transfer.sources import load_source

logger = logging.getLogger("imgcls")

# Set on the model after loading: the names of the parameters that came from the source
# (L2-SP pulls exactly these towards their loaded values).
LOADED_ATTRIBUTE = "imgcls_loaded_parameters"


@dataclass
class FineTune:
    source: str | None = None
    loaded: list[str] = field(default_factory=list)
    head_replaced: bool = False
    mismatched: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    backbone_lr_mult: float = 1.0
    # (level, message): logged by the job once the run's train.log is attached
    notes: list[tuple[int, str]] = field(default_factory=list)

    def note(self, message: str, level: int = logging.INFO) -> None:
        self.notes.append((level, message))

    def log(self) -> None:
        for level, message in self.notes:
            logger.log(level, message)

    def summary(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "loaded_tensors": len(self.loaded),
            "head_replaced": self.head_replaced,
            "mismatched": self.mismatched,
            "frozen": self.frozen,
            "backbone_lr_mult": self.backbone_lr_mult,
        }


def parse_freeze(value: Any) -> str | int:
    """``backbone``, ``none`` or a number of stages N >= 0; anything else is a UserError."""
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        if int(value) < 0:
            raise UserError(f"finetune.freeze={value} is invalid: stages must be >= 0")
        return int(value)
    if value in ("backbone", "none"):
        return str(value)
    raise UserError(
        f"finetune.freeze={value} is invalid: use backbone, none or a number of stages N"
    )


def setup(options: dict[str, Any], model: nn.Module, data: DataSplits, model_cfg: Any) -> FineTune:
    """Apply the ``finetune`` node to the built model: load, then freeze."""
    tune = FineTune(backbone_lr_mult=float(options.get("backbone_lr_mult", 1.0)))
    source = options.get("from")
    if source:
        tune.source = str(source)
        load_into(model, str(source), data, model_cfg, tune)
    freeze(model, parse_freeze(options.get("freeze", "none")), tune)
    return tune


def load_into(
    model: nn.Module, source: str, data: DataSplits, model_cfg: Any, tune: FineTune
) -> None:
    own = model.state_dict()
    head = head_parameter_names(model)
    head_name = split_head(model)[0]
    if source == "torchvision":
        variant = str(model_cfg.get("variant") or model_cfg.get("name"))
        report = load_pretrained(model, variant)
        tune.loaded = [k for k in report.loaded if k not in head]
        tune.head_replaced = any(k in report.not_loaded for k in head)
        tune.mismatched = sorted({k.rsplit(".", 1)[0] for k in report.not_loaded if k not in head})
    else:
        _, state = load_source(source, "finetune.from")
        weights = state["model"]
        classes = state.get("classes")
        same_classes = classes is None or list(classes) == list(data.classes)
        fitting, mismatched = {}, []
        for key, tensor in weights.items():
            if key in head and not same_classes:
                continue
            if key in own and own[key].shape == tensor.shape:
                fitting[key] = tensor
            else:
                mismatched.append(key)
        mismatched += [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
        if not [k for k in fitting if k not in head]:
            raise UserError(
                f"finetune.from={source}: no backbone tensor fits this {model_cfg.name} model "
                "(a checkpoint of another architecture?)"
            )
        model.load_state_dict(fitting, strict=False)
        tune.loaded = sorted(fitting)
        tune.mismatched = sorted({k.rsplit(".", 1)[0] for k in mismatched})
        if not same_classes:
            tune.head_replaced = True
            tune.note(
                f"finetune: classifier head '{head_name}' replaced: the source has "
                f"{len(classes)} classes, {data.name} has {data.num_classes}"
            )
    tune.note(f"finetune: loaded {len(tune.loaded)} tensors from {source}")
    if tune.mismatched:
        tune.note(
            "finetune: layers not loaded (missing or shape differs), left as initialised: "
            + ", ".join(tune.mismatched),
            logging.WARNING,
        )
    loaded_params = {n for n, _ in model.named_parameters() if n in set(tune.loaded)} - head
    setattr(model, LOADED_ATTRIBUTE, frozenset(loaded_params))


def stages(model: nn.Module) -> list[Stage]:
    """The backbone's stages in order, as (label, parameter names), the head excluded.

    timm models and torchvision's ViT, ConvNeXt and Swin have their own
    (:func:`imgcls.models.blocks.block_stages`: the stem, then each stage or transformer
    block); any other model: its top-level children with parameters (a Sequential's children
    count one by one), the head's branch excluded."""
    known = block_stages(model)
    if known is not None:
        head = head_parameter_names(model)
        return [(label, [n for n in names if n not in head]) for label, names in known]
    head_name = split_head(model)[0]
    found: list[Stage] = []
    for name, child in model.named_children():
        children = (
            [(f"{name}.{n}", c) for n, c in child.named_children()]
            if isinstance(child, nn.Sequential)
            else [(name, child)]
        )
        for full, module in children:
            if head_name == full or head_name.startswith(full + "."):
                continue
            names = [f"{full}.{key}" for key, _ in module.named_parameters()]
            if names:
                found.append((full, names))
    return found


def freeze(model: nn.Module, spec: str | int, tune: FineTune) -> None:
    if spec == "none" or spec == 0:
        return
    available = stages(model)
    if spec == "backbone":
        blocks = available
    else:
        if spec > len(available):
            raise UserError(
                f"finetune.freeze={spec} is invalid: this model has {len(available)} stages "
                f"({', '.join(n for n, _ in available)})"
            )
        blocks = available[:spec]
    head = head_parameter_names(model)
    frozen = {name for _, names in blocks for name in names if name not in head}
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    prefixes = tuple(f"{part}." for label, _ in blocks for part in label.split("+"))
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            continue
        own = [f"{name}.{key}" for key, _ in layer.named_parameters()]
        if (own and all(n in frozen for n in own)) or (not own and name.startswith(prefixes)):
            layer.register_forward_pre_hook(_keep_eval)
    tune.frozen = [n for n, _ in blocks]
    tune.note(f"finetune: frozen {', '.join(tune.frozen)}")


def _keep_eval(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """A frozen batch-norm layer normalises with its loaded running statistics, always."""
    module.train(False)


def scale_backbone_lr(optimizer: torch.optim.Optimizer, model: nn.Module, mult: float) -> None:
    """Split every optimizer group into head and backbone; the backbone's lr is ``mult`` x."""
    if mult == 1.0:
        return
    head = {id(p) for n, p in model.named_parameters() if n in head_parameter_names(model)}
    groups = []
    for group in optimizer.param_groups:
        for part, scale in (
            ([p for p in group["params"] if id(p) not in head], mult),
            ([p for p in group["params"] if id(p) in head], 1.0),
        ):
            if part:
                groups.append({**group, "params": part, "lr": group["lr"] * scale})
    optimizer.param_groups = groups
