"""Import every model family so that each registers its name and its variants in MODELS."""

from imgcls.models import (  # noqa: F401  (registration)
    alexnet,
    bncnn,
    densenet,
    efficientnet,
    lenet,
    resnet,
    simplecnn,
    vgg,
)
