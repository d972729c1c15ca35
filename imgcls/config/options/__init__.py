"""Every component's options dataclass, one module per config group (torch-free).

Importing this package declares every schema (:data:`~imgcls.config.options.base.SCHEMAS`);
:func:`imgcls.config.compose.register_configs` stores them in Hydra's ConfigStore.
"""

from imgcls.config.options import augment, datasets, models, optimizers  # noqa: F401  (declares them)
from imgcls.config.options.base import SCHEMAS, Options, schema

__all__ = ["SCHEMAS", "Options", "schema"]
