"""torchvision's ImageNet weights from the local torch hub cache, never downloaded.

The file must already be where ``torch.hub`` keeps it: ``<torch.hub.get_dir()>/checkpoints/``
under the file name of torchvision's weights URL. Tensors whose shape fits are loaded; the
rest (a head for another class count, a stem for other channels or a small-image stem)
keep their fresh initialisation, and the log says which.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from imgcls.base.checkpoint import safe_load
from imgcls.base.errors import UserError
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.torchvision_catalog import TORCHVISION_MODELS

logger = logging.getLogger("imgcls")

# Old DenseNet checkpoints name layers 'norm.1' where the modules are 'norm1' (as torchvision).
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


@dataclass
class LoadReport:
    path: Path
    loaded: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)  # the model's tensors left as initialised


def weights_url(variant: str) -> str:
    from torchvision.models import get_model_weights

    return get_model_weights(variant).DEFAULT.url


def weights_path(variant: str) -> Path:
    """Where torch hub keeps the file: ``<hub dir>/checkpoints/<file name of the URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_url(variant).rsplit("/", 1)[-1]


def rename_densenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        match = _DENSENET_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def load_pretrained(
    model: nn.Module,
    variant: str,
    adapt_state: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> LoadReport:
    """Load the variant's ImageNet weights into ``model`` where the shapes fit, after
    ``adapt_state`` (a ViT's position embeddings resized to its image size, say)."""
    known = VARIANTS[variant].pretrained if variant in VARIANTS else variant in TORCHVISION_MODELS
    if not known:
        family = VARIANTS[variant].family if variant in VARIANTS else variant
        available = [v for v in FAMILIES[family].names() if VARIANTS[v].pretrained]
        where = f"; variants with weights: {', '.join(available)}" if available else ""
        raise UserError(
            f"model.pretrained=true: torchvision has no ImageNet weights for {variant}{where}"
        )
    path = weights_path(variant)
    if not path.is_file():
        raise UserError(
            f"pretrained weights for {variant} not found: expected {path}; "
            f"download {weights_url(variant)} to that path (offline: copy it there)"
        )

    try:
        state = safe_load(path)
    except UserError as error:
        raise UserError(f"cannot read pretrained weights: {error}") from error
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict of {variant}")
    if variant.startswith("densenet"):
        state = rename_densenet_keys(state)
    if adapt_state is not None:
        state = adapt_state(state)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise UserError(f"{path} holds no tensor that fits {variant}: is it the right file?")
    model.load_state_dict(fitting, strict=False)
    missing = [k for k in own if k not in fitting and not k.endswith("num_batches_tracked")]
    report = LoadReport(path, sorted(fitting), missing)
    layers = sorted({k.rsplit(".", 1)[0] for k in report.not_loaded})
    logger.info(
        f"pretrained {variant}: loaded {len(fitting)}/{len(own)} tensors from {path}"
        + (f"; initialised afresh (shape differs): {', '.join(layers)}" if layers else "")
    )
    return report
