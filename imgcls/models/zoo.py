"""Import every model family so that each registers its name and its variants in MODELS."""

from imgcls.models import (  # noqa: F401  (registration)
    alexnet,
    densenet,
    efficientnet,
    lenet,
    resnet,
    simplecnn,
    vgg,
)
