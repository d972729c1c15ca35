"""Optimizers, schedulers and regularizers (registered here), the engine and the train job."""

from imgcls.train import optimizers, regularizers, schedulers  # noqa: F401  (registration)
