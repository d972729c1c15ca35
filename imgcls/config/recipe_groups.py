"""Which recipe fits a modern architecture: ``modern_convnet`` or ``vision_transformer``.

``model=torchvision`` and ``model=timm`` bring the convnet recipe (their default
architectures are convnets); a transformer chosen with ``model.variant`` trains better with
``recipe@_global_=vision_transformer`` (lower rate, longer warmup, clipping). Hydra picks a
recipe before the variant is known, so the choice stays the user's; the run's log says when
the recipe in use is the other group's. Torch-free: names only.
"""

from __future__ import annotations

CONVNET_RECIPE = "modern_convnet"
TRANSFORMER_RECIPE = "vision_transformer"

# name prefixes of transformer architectures (torchvision's vit_/swin/maxvit, timm's families)
TRANSFORMER_PREFIXES = (
    "vit_",
    "swin",
    "maxvit",
    "maxxvit",
    "deit",
    "beit",
    "eva",
    "cait",
    "coat",
    "xcit",
    "levit",
    "pvt",
    "twins",
    "crossvit",
    "mvitv2",
    "tnt_",
    "flexivit",
    "test_vit",
)


def is_transformer(variant: str) -> bool:
    """True for a vision transformer (or a hybrid with attention stages) by its name."""
    return variant.lower().startswith(TRANSFORMER_PREFIXES)


def recipe_hint(model: str, variant: str | None, recipe: str | None) -> str | None:
    """A line for the log when a transformer trains with the convnet recipe, else None."""
    if model not in ("torchvision", "timm") or not variant or recipe != CONVNET_RECIPE:
        return None
    if not is_transformer(variant):
        return None
    return (
        f"model.variant={variant} is a vision transformer, trained here with the "
        f"{CONVNET_RECIPE} recipe: recipe@_global_={TRANSFORMER_RECIPE} is the one for it "
        "(docs/guide/models.md#recipes-for-modern-architectures)"
    )
