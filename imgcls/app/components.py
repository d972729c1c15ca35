"""The one place that imports every module that registers a component.

Registries (:mod:`imgcls.registry`) start empty: a builder is registered when its module is
imported. Validation and building import this module, so that every model, dataset, augmentation, optimizer, schedule, regularizer, loss, logger
and training method is known. It imports torch and torchvision, which is why ``imgcls --help``
and ``imgcls list`` never import it.
"""

from __future__ import annotations

from types import ModuleType

from imgcls import loggers
from imgcls.data import (
    augment,
    cifar,
    digits,
    digits_shifted,
    folder,
    idx,
    svhn,
    synthetic,
    table,
)
from imgcls.models import (
    airbench,
    alexnet,
    bncnn,
    densenet,
    efficientnet,
    lenet,
    resnet,
    simplecnn,
    timm_any,
    torchvision_any,
    vgg,
)
from imgcls.train import losses, optimizers, regularizers, schedulers
from imgcls.transfer import dann, distill, l2sp, methods

REGISTERING_MODULES: tuple[ModuleType, ...] = (
    loggers,
    *(augment, cifar, digits, digits_shifted, folder, idx, svhn, synthetic, table),
    *(airbench, alexnet, bncnn, densenet, efficientnet, lenet, resnet, simplecnn, vgg),
    *(timm_any, torchvision_any),
    *(losses, optimizers, regularizers, schedulers),
    *(dann, distill, l2sp, methods),
)
