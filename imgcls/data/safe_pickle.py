"""Reading a pickle that may be hostile: only dicts, lists, strings, numbers and plain NumPy
arrays come out, nothing runs, and nothing is allocated beyond what the file's size justifies.

CIFAR's python batches are pickles, and a pickle is a program. Three guards:

1. the file is read whole (at most ``MAX_FILE_BYTES``) and walked opcode by opcode with
   :mod:`pickletools` before anything runs: every length it names must be in the file, the
   memo slots must be numbered within the file's opcode count (the unpickler sizes its memo
   by the largest slot: ``LONG_BINPUT 4294967295`` alone would take 32 GB), and opcodes
   that build instances or reach outside the file are refused;
2. the only globals are stand-ins: NumPy's array and dtype reconstructors record what the
   pickle asks for, and no NumPy code sees the pickle's arguments;
3. the stand-ins become arrays only after the pickle is loaded, and only a numeric array whose
   bytes are all in the file (``shape`` x ``itemsize`` equal to the data's length).

Any exception while reading — a hostile or damaged file can raise anything, MemoryError and
RecursionError included — is a :class:`UnsafePickleError` with one line of text.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from imgcls.base.errors import one_line

# A CIFAR file is at most about 160 MB (CIFAR-100's train); anything far larger is not one.
MAX_FILE_BYTES = 1 << 30
# Opcodes no data pickle needs: persistent ids, the copyreg extension registry, and the
# instance builders (only the stand-ins below are ever called, through REDUCE).
REFUSED_OPCODES = {
    "PERSID",
    "BINPERSID",
    "EXT1",
    "EXT2",
    "EXT4",
    "INST",
    "OBJ",
    "NEWOBJ",
    "NEWOBJ_EX",
}
MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}
# Array element types a data file may hold: booleans, integers and floats, no objects.
NUMERIC_KINDS = "biuf"


class UnsafePickleError(ValueError):
    """A pickle that is damaged or asks for something a data file never does."""


class _Dtype:
    """What ``numpy.dtype(...)`` was called with, and the state set on it."""

    def __init__(self, name: Any, *_: Any) -> None:
        self.name, self.state = name, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def real(self) -> np.dtype:
        """The NumPy dtype, if numeric and without fields; its byte order from the state."""
        if not isinstance(self.name, str) or len(self.name) > 8:
            raise UnsafePickleError(f"an array type {str(self.name)[:20]!r}")
        dtype = np.dtype(self.name)
        if dtype.kind not in NUMERIC_KINDS or dtype.fields or dtype.subdtype:
            raise UnsafePickleError(f"an array of type {dtype} (only numbers are read)")
        order = self.state[1] if isinstance(self.state, tuple) and len(self.state) > 1 else "|"
        if order in ("<", ">"):
            dtype = dtype.newbyteorder(order)
        return dtype


def _dtype(value: Any) -> np.dtype:
    if isinstance(value, _Dtype):
        return value.real()
    if isinstance(value, bytes | str) and len(value) <= 8:  # a type code, e.g. b"B"
        return _Dtype(value.decode("latin1") if isinstance(value, bytes) else value).real()
    raise UnsafePickleError(f"an array type of {type(value).__name__}")


class _Array:
    """What NumPy's ``_reconstruct`` and the array's ``__setstate__`` were called with."""

    def __init__(self, *_: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def real(self) -> np.ndarray:
        """The array, built only from bytes that are in the file."""
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("an array without its data")
        _, shape, dtype, fortran, data = state
        return _array(shape, _dtype(dtype), data, "F" if fortran else "C")


def _array(shape: Any, dtype: np.dtype, data: Any, order: str) -> np.ndarray:
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise UnsafePickleError(f"an array of shape {str(shape)[:40]}")
    if isinstance(data, str):  # Python 2 pickles hold bytes as Latin-1 text
        data = data.encode("latin1")
    if not isinstance(data, bytes | bytearray):
        raise UnsafePickleError(f"array data of type {type(data).__name__}")
    if len(shape) > 32 or math.prod(shape) * dtype.itemsize != len(data):
        raise UnsafePickleError(
            f"an array of shape {str(shape)[:40]} ({dtype}) from {len(data):,} bytes of data"
        )
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order)


def _frombuffer(data: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """NumPy's ``_frombuffer`` (arrays pickled with protocol 5), from the file's bytes only."""
    return _array(shape, _dtype(dtype), data, "F" if order == "F" else "C")


def _scalar(dtype: Any, data: Any = b"") -> Any:
    """NumPy's ``scalar``: one number from its bytes."""
    return _array((), _dtype(dtype), data, "C")[()]


def _encode(text: Any, encoding: Any = "latin1", *_: Any) -> bytes:
    """``_codecs.encode`` as protocol 2 pickles use it for bytes: Latin-1 text only."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
        raise UnsafePickleError(f"a call of _codecs.encode with {str(encoding)[:20]!r}")
    return text.encode("latin1")


STAND_INS: dict[tuple[str, str], Any] = {}
for _module in ("numpy.core", "numpy._core"):
    STAND_INS[f"{_module}.multiarray", "_reconstruct"] = _Array
    STAND_INS[f"{_module}.multiarray", "scalar"] = _scalar
    STAND_INS[f"{_module}.numeric", "_frombuffer"] = _frombuffer
STAND_INS["numpy", "ndarray"] = _Array
STAND_INS["numpy", "dtype"] = _Dtype
STAND_INS["_codecs", "encode"] = _encode


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in STAND_INS:
            raise UnsafePickleError(f"refusing to load {module}.{name}")
        return STAND_INS[module, name]


def check_opcodes(data: bytes) -> None:
    """Walk the pickle without running it; raise for a length beyond the file, a refused
    opcode, or a memo slot numbered beyond the opcodes read so far."""
    for count, (opcode, argument, _) in enumerate(pickletools.genops(io.BytesIO(data)), 1):
        if opcode.name in REFUSED_OPCODES:
            raise UnsafePickleError(f"the pickle opcode {opcode.name}")
        if opcode.name in MEMO_OPCODES and int(argument) > count:
            raise UnsafePickleError(f"a memo slot {argument} after {count} opcodes")


def load(path: Path) -> Any:
    """The pickle in ``path``, arrays at the top level of a dict made real (anything else
    left as it came: callers check the types they need)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UnsafePickleError(f"{size:,} bytes, more than any data pickle of this kind")
        data = path.read_bytes()
        check_opcodes(data)
        loaded = _Unpickler(io.BytesIO(data), encoding="latin1").load()
        if isinstance(loaded, dict):
            loaded = {k: v.real() if isinstance(v, _Array) else v for k, v in loaded.items()}
        return loaded
    except Exception as error:
        typed = not isinstance(error, UnsafePickleError)
        raise UnsafePickleError(one_line(error, typed=typed, limit=200)) from error
