"""What ``imgcls list models`` shows: every family and variant, and optionally their facts.

The plain listing reads the torch-free catalogue; ``--input CxHxW`` builds each variant on
PyTorch's meta device (no memory, no initialisation) and counts its parameters and forward
FLOPs for that input with PyTorch's own FLOP counter.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from imgcls.base.errors import UserError
from imgcls.config.catalog import FAMILIES, VARIANTS
from imgcls.config.files import group_options, option_description
from imgcls.config.torchvision_catalog import TORCHVISION_MODELS, has_small_stem
from imgcls.registry import MODELS

_SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)$")


@dataclass
class FactsRequest:
    shape: tuple[int, int, int]  # C, H, W
    num_classes: int


def parse_shape(text: str) -> tuple[int, int, int]:
    """``3x32x32`` -> (3, 32, 32); anything else is a one-line UserError."""
    match = _SHAPE.match(text.strip().lower())
    if not match or min(int(g) for g in match.groups()) < 1:
        raise UserError(
            f"--input {text!r} is invalid: give channels x height x width, e.g. --input 3x32x32"
        )
    c, h, w = (int(g) for g in match.groups())
    return c, h, w


def facts_request(shape: str, classes: str | None) -> FactsRequest:
    """``--input CxHxW [--classes N]`` of ``imgcls list models`` as a checked request."""
    count = "10" if classes is None else classes
    if not count.isdigit() or int(count) < 2:
        raise UserError(f"--classes {count!r} is invalid: give a class count of at least 2")
    return FactsRequest(parse_shape(shape), int(count))


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(name, pattern)


def model_rows(pattern: str = "*") -> list[tuple[str, str]]:
    """(option, description) rows: each family (a conf file), then its variants indented."""
    rows: list[tuple[str, str]] = []
    for option in group_options("model"):
        family = FAMILIES.get(option)
        variants = [] if family is None else list(family.variants)
        if len(variants) == 1 and variants[0].name == option:
            variants = []  # alexnet: the family is its only variant
        if not _matches(option, pattern):
            variants = [v for v in variants if _matches(v.name, pattern)]
            if not variants:
                continue
        text = option_description("model", option)
        if family is not None:
            text += f" [default variant: {family.default}]"
        rows.append((option, text))
        rows += [(f"  {v.name}", v.describe()) for v in variants]
    return rows


def fact_names(pattern: str = "*") -> list[str]:
    """The models ``--input`` measures: every variant, and families without variants."""
    names: list[str] = []
    for option in group_options("model"):
        family = FAMILIES.get(option)
        candidates = family.names() if family else [option]
        if _matches(option, pattern):
            names += candidates
        else:
            names += [n for n in candidates if _matches(n, pattern)]
    return names


SOURCES = ("imgcls", "torchvision", "timm")
"""Where ``imgcls list models --source`` looks: imgcls's config files and families, or every
classifier of torchvision (``model=torchvision model.variant=...``) or of timm."""


def torchvision_rows(pattern: str = "*") -> list[tuple[str, str]]:
    """(name, how to choose it) for torchvision's classifiers matching ``pattern``."""
    rows = []
    for name in torchvision_names(pattern):
        if name in VARIANTS:
            family = VARIANTS[name].family
            rows.append((name, f"model={family} model.variant={name} (imgcls's {family} family)"))
        else:
            rows.append((name, f"model=torchvision model.variant={name}"))
    return rows


def torchvision_names(pattern: str = "*") -> list[str]:
    """torchvision's classifiers whose name matches ``pattern``."""
    return [n for n in TORCHVISION_MODELS if _matches(n, pattern)]


def _flops(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return str(value)


def facts_rows(names: Sequence[str], request: FactsRequest) -> list[tuple[str, str, str, str]]:
    """(model, stem, params, forward FLOPs) for each name, built on the meta device."""
    import torch

    from imgcls.config.options.models import Stem
    from imgcls.models.facts import count_flops, count_parameters
    from imgcls.models.stems import resolve_stem

    c, h, w = request.shape
    rows = []
    for name in names:
        stem = resolve_stem(Stem.auto, (h, w)).value if _has_stem(name) else "-"
        try:
            with torch.device("meta"):
                model = MODELS.build(
                    name, {}, num_classes=request.num_classes, in_channels=c, image_size=(h, w)
                )
                flops = count_flops(model, (c, h, w), device="meta")
            rows.append((name, stem, f"{count_parameters(model):,}", _flops(flops)))
        except UserError as error:
            rows.append((name, stem, "-", f"({error})"))
    return rows


def _has_stem(name: str) -> bool:
    """Whether ``model.stem`` changes ``name`` (torchvision's patch embeddings keep theirs)."""
    if name in TORCHVISION_MODELS and name not in VARIANTS:
        return has_small_stem(name)
    return "stem" in _options(name)


def _options(name: str) -> list[str]:
    return [f.name for f in dataclasses.fields(MODELS.get(name).options)]
