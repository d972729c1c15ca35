"""Any timm architecture: ``model=timm model.variant=<name>`` (the optional extra ``imgcls[timm]``).

timm is imported only when such a model is built: ``imgcls --help`` and ``imgcls list`` never
pay its import (seconds). The model is ``timm.create_model(arch, pretrained=False, num_classes,
in_chans, drop_rate, drop_path_rate)``, with ``img_size`` set to the dataset's image size for
the architectures that take one (vision transformers, MaxViT ...). Weights come from local
files only, never downloaded (:mod:`imgcls.models.timm_weights`).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from imgcls.base.errors import UserError, did_you_mean, one_line
from imgcls.config.options.models import TimmOptions
from imgcls.models.timm_weights import load_local_weights, pretrained_file
from imgcls.registry import MODELS

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger("imgcls")

EXTRA = "pip install 'imgcls[timm]'"


def import_timm() -> ModuleType:
    """timm, or the one-line error that names the extra which installs it."""
    try:
        import timm
    except ImportError as error:
        raise UserError(
            f"model=timm needs the timm package, which is not installed ({one_line(error)}): "
            f"{EXTRA}"
        ) from None
    return timm


def check_arch(timm: ModuleType, arch: str) -> None:
    """An unknown architecture is one line with a did-you-mean over ``timm.list_models()``."""
    if timm.is_model(arch):
        return
    names = timm.list_models()
    hint = did_you_mean(arch.split(".")[0], names) or ";"
    raise UserError(
        f"unknown timm model 'model.variant={arch}'{hint} timm has {len(names)} architectures: "
        "imgcls list models --source timm '<pattern>' lists them"
    )


def _size(image_size: tuple[int, int]) -> int | tuple[int, int]:
    return image_size[0] if image_size[0] == image_size[1] else tuple(image_size)


def create(timm: ModuleType, arch: str, image_size: tuple[int, int], **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with ``img_size`` when the architecture takes one.

    timm's model classes take ``img_size`` or refuse it as an unexpected keyword argument, so
    trying with it first and without it on that TypeError gives each the right call.
    """
    try:
        return timm.create_model(arch, pretrained=False, img_size=_size(image_size), **kwargs)
    except TypeError as error:
        if "img_size" not in str(error):
            raise
    return timm.create_model(arch, pretrained=False, **kwargs)


def probe(
    timm: ModuleType,
    arch: str,
    in_channels: int,
    image_size: tuple[int, int],
    kwargs: dict[str, Any],
) -> None:
    """Build ``arch`` on the meta device and run one image through it: an input it cannot take
    (a ViT's patch larger than the image, a window larger than the map) is one line now,
    not a shape error in the middle of the first epoch. Meta tensors cost no memory or time."""
    import torch

    with torch.device("meta"):
        try:
            model = create(timm, arch, image_size, **kwargs)
        except TypeError as error:  # an option the architecture has no use for
            raise UserError(
                f"timm model {arch} refuses an option ({one_line(error, limit=200)}): "
                "check model.kwargs; model.drop_path_rate=null leaves the architecture's own"
            ) from error
    try:
        with torch.device("meta"):
            logits = model.eval()(torch.zeros(1, in_channels, *image_size))
        if logits.dim() != 2 or logits.shape[-1] != kwargs["num_classes"]:
            raise ValueError(f"it gives outputs of shape {list(logits.shape)}")
    except (
        AssertionError,
        RuntimeError,
        ValueError,
        TypeError,
        IndexError,
        ArithmeticError,
    ) as error:
        shape = f"{in_channels}x{image_size[0]}x{image_size[1]}"
        raise UserError(
            f"timm model {arch} cannot take a {shape} input: {one_line(error, limit=200)}"
        ) from error


@MODELS.register("timm", TimmOptions)
def timm_model(
    options: TimmOptions, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> nn.Module:
    """timm's ``options.variant`` for the dataset's classes, channels and image size."""
    timm = import_timm()
    arch = options.variant
    check_arch(timm, arch)
    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "in_chans": in_channels,
        "drop_rate": options.drop_rate,
        **options.kwargs,
    }
    if options.drop_path_rate is not None:
        kwargs["drop_path_rate"] = options.drop_path_rate
    probe(timm, arch, in_channels, image_size, kwargs)
    model = create(timm, arch, image_size, **kwargs)
    if options.pretrained or options.weights:
        path = (
            pretrained_file(model.pretrained_cfg, arch) if options.pretrained else options.weights
        )
        load_local_weights(model, path, arch)
    return model
