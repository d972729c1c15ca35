"""Every component's options dataclass, one module per config group (torch-free).

Importing this package declares every schema (:data:`~imgcls.config.options.base.SCHEMAS`);
:func:`imgcls.config.compose.register_configs` stores them in Hydra's ConfigStore.
"""

from imgcls.config.options import (  # noqa: F401  (declares the schemas)
    augment,
    datasets,
    loggers,
    losses,
    methods,
    models,
    optimizers,
    regularizers,
    schedulers,
)
from imgcls.config.options.base import SCHEMAS, Options, schema

__all__ = ["SCHEMAS", "Options", "schema"]
