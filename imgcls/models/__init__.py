"""Model families (registered in MODELS); each builder takes num_classes and in_channels."""

from imgcls.models import resnet, simplecnn  # noqa: F401  (registration)
