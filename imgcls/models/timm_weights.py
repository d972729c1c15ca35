"""Weights for a timm model from local files only: a file given, or the Hugging Face cache.

``model.weights=<file>`` reads a safetensors file or a torch state dict (a plain one, or a
checkpoint holding it under ``state_dict`` or ``model``, as timm's and imgcls's do).
``model.pretrained=true`` finds the architecture's published file in the local Hugging Face
cache (``HF_HUB_CACHE`` / ``HF_HOME``), offline: nothing is downloaded at run time, and a
missing file is one line naming where it was looked for and the command that fetches it.

The tensors whose names and shapes fit the model are loaded, never the classifier head (it is
sized for the dataset's classes); a stem pretrained on RGB takes a dataset of other channels
as timm does (its filters summed for one channel, repeated and rescaled for more). The
pretrained configuration's normalisation and input size are logged and kept on the model as
``model.pretrained_input`` (:class:`PretrainedInput`) for fine-tuning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgcls.base.checkpoint import safe_load
from imgcls.base.errors import UserError, one_line
from imgcls.models.pretrained import LoadReport

logger = logging.getLogger("imgcls")

FILES = ("model.safetensors", "pytorch_model.bin")  # what timm publishes on the hub, in order


@dataclass(frozen=True)
class PretrainedInput:
    """What the weights were trained on: per-channel mean and std (0..1 scale), C x H x W."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]


def hub_cache() -> Path:
    """The Hugging Face hub cache directory (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def pretrained_file(cfg: dict[str, Any], arch: str) -> Path:
    """The local file of ``arch``'s pretrained weights, found without any network access."""
    if cfg.get("file"):
        path = Path(cfg["file"])
        if path.is_file():
            return path
    repo = cfg.get("hf_hub_id")
    if not repo:
        raise UserError(
            f"timm model {arch} has no weights on the Hugging Face hub: pass a local file "
            "with model.weights=<file>"
        )
    from huggingface_hub import try_to_load_from_cache

    names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else list(FILES)
    for name in names:
        found = try_to_load_from_cache(repo, name)  # reads the cache only: never the network
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    raise UserError(
        f"pretrained weights for timm model {arch} not found in the Hugging Face cache "
        f"{hub_cache()} (looked for {repo}: {', '.join(names)}); fetch them once where there "
        f"is a network with: hf download {repo} (or give a local file: model.weights=<file>)"
    )


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a torch state dict (never runs code from it)."""
    if not path.is_file():
        raise UserError(f"model.weights={path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise UserError(
                f"{path} is not a readable safetensors file ({one_line(error)})"
            ) from None
    state = safe_load(path)
    if isinstance(state, dict):
        for key in ("state_dict", "model"):  # timm's train.py and imgcls's own checkpoints
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    tensors = (
        {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise UserError(f"{path} holds no state dict (a mapping of names to tensors)")
    return tensors


def head_names(model: nn.Module, cfg: dict[str, Any]) -> tuple[str, ...]:
    """The module names of the classifier head(s): never loaded from pretrained weights."""
    named = cfg.get("classifier") or ()
    heads = [named] if isinstance(named, str) else list(named)
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(classifier, nn.Module):
        heads += [n for n, m in model.named_modules() if m is classifier and n]
    return tuple(sorted(set(heads)))


def _is_under(key: str, modules: tuple[str, ...]) -> bool:
    return any(key == m or key.startswith(m + ".") for m in modules)


def _adapt_stem(
    state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], cfg: dict[str, Any]
) -> None:
    """RGB stem filters for another channel count, with timm's own rule."""
    from timm.models import adapt_input_conv

    first = cfg.get("first_conv")
    for conv in [first] if isinstance(first, str) else list(first or ()):
        key = f"{conv}.weight"
        if key in state and key in own and state[key].dim() == 4:
            have, want = state[key].shape, own[key].shape
            if have[1] != want[1] and have[0] == want[0] and have[2:] == want[2:]:
                state[key] = adapt_input_conv(want[1], state[key])


def load_local_weights(model: nn.Module, path: str | Path, arch: str) -> LoadReport:
    """Load the tensors of ``path`` that fit ``model`` (name and shape), never its head."""
    path = Path(path).expanduser()
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    state = read_state(path)
    own = model.state_dict()
    _adapt_stem(state, own, cfg)
    heads = head_names(model, cfg)
    fitting = {
        k: v
        for k, v in state.items()
        if k in own and own[k].shape == v.shape and not _is_under(k, heads)
    }
    if not fitting:
        raise UserError(
            f"{path} holds no tensor that fits timm model {arch}: is it the right file?"
        )
    model.load_state_dict(fitting, strict=False)
    kept = [k for k in own if k not in fitting and not k.endswith("num_batches_tracked")]
    report = LoadReport(path, sorted(fitting), kept)
    layers = sorted({k.rsplit(".", 1)[0] for k in kept})
    logger.info(
        f"timm {arch}: loaded {len(fitting)}/{len(own)} tensors from {path}"
        + (f"; initialised afresh: {', '.join(layers)}" if layers else "")
    )
    record_input(model, cfg, arch)
    return report


def record_input(model: nn.Module, cfg: dict[str, Any], arch: str) -> None:
    """Keep and log the normalisation and input size the weights were trained with."""
    if not (cfg.get("mean") and cfg.get("std") and cfg.get("input_size")):
        return
    spec = PretrainedInput(
        tuple(float(v) for v in cfg["mean"]),
        tuple(float(v) for v in cfg["std"]),
        tuple(int(v) for v in cfg["input_size"]),
    )
    model.pretrained_input = spec
    c, h, w = spec.input_size
    logger.info(
        f"timm {arch}: pretrained on {c}x{h}x{w} images normalised with mean "
        f"{list(spec.mean)} std {list(spec.std)}"
    )
