"""``imgcls list models --source timm [pattern] [--input CxHxW]``: timm's architectures.

Without ``--input``: each architecture matching the glob and the tags of its published
weights (what ``model.pretrained=true`` can read once the files are in the local Hugging Face
cache). With ``--input``: each built on the meta device for that input, as ``model=timm``
builds it, with its parameters and forward FLOPs, or why it cannot take the input.
"""

from __future__ import annotations

from collections import defaultdict

from imgcls.base.errors import UserError
from imgcls.models.overview import FactsRequest
from imgcls.models.timm_any import import_timm


def timm_names(pattern: str) -> list[str]:
    """timm's architectures whose name matches the glob ``pattern``."""
    names = import_timm().list_models(pattern)
    if not names:
        raise UserError(f"no timm model matches '{pattern}' (timm.list_models('{pattern}'))")
    return names


def timm_rows(pattern: str) -> list[tuple[str, str]]:
    """(architecture, tags of its published weights) for each match."""
    timm = import_timm()
    names = timm_names(pattern)
    tags: dict[str, list[str]] = defaultdict(list)
    for full in timm.list_pretrained(pattern):
        arch, _, tag = full.partition(".")
        tags[arch].append(tag or "(default)")
    return [(name, ", ".join(tags[name]) or "-") for name in names]


def _flops(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return str(value)


def timm_facts_rows(pattern: str, request: FactsRequest) -> list[tuple[str, str, str]]:
    """(architecture, parameters, forward FLOPs) for each match, built on the meta device."""
    import torch

    from imgcls.models.facts import count_flops, count_parameters
    from imgcls.registry import MODELS  # model=timm is registered by importing timm_any

    c, h, w = request.shape
    rows = []
    for name in timm_names(pattern):
        try:
            with torch.device("meta"):
                model = MODELS.build(
                    "timm",
                    {"variant": name},
                    num_classes=request.num_classes,
                    in_channels=c,
                    image_size=(h, w),
                )
                flops = count_flops(model, (c, h, w), device="meta")
            rows.append((name, f"{count_parameters(model):,}", _flops(flops)))
        except UserError as error:
            rows.append((name, "-", f"({error})"))
    return rows
