"""Optional dependencies (pip extras): import one, or say in one line which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from imgcls.base.errors import UserError

# What each optional module comes with: ``pip install 'imgcls[<extra>]'``.
EXTRAS = {"onnx": "export", "onnxruntime": "export", "onnxscript": "export"}


def require(module: str, purpose: str) -> ModuleType:
    """``import module``; when it is missing, a UserError naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module, module)
        raise UserError(
            f"{purpose} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'imgcls[{extra}]'"
        ) from error
