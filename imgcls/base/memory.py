"""How much memory this process may still take: to refuse a request that cannot fit before
allocating it, with one line naming the keys that set its size, instead of a MemoryError
deep inside NumPy or torch (which :func:`imgcls.base.errors.error_line` still turns into
one line when an allocation nobody could foresee fails)."""

from __future__ import annotations

import os
import resource

from imgcls.base.errors import UserError


def available_bytes() -> int | None:
    """The memory this process can still allocate, or None when it cannot be told.

    The smaller of the machine's available memory (``MemAvailable``) and what is left under
    an address-space limit (``ulimit -v``) after what the process already maps.
    """
    limits = [_meminfo_kb("MemAvailable")]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _status_kb("VmSize")
        limits.append(None if used is None else soft // 1024 - used)
    known = [kb for kb in limits if kb is not None]
    return max(0, min(known)) * 1024 if known else None


def check_fits(needed: int, what: str, keys: str) -> None:
    """Refuse ``needed`` bytes for ``what`` when they cannot fit, naming the ``keys`` that set
    the size; when the available memory cannot be told, nothing is refused."""
    available = available_bytes()
    if available is None or needed <= available:
        return
    raise UserError(
        f"{what} need {_size(needed)} of memory but only {_size(available)} is available: "
        f"lower {keys}"
    )


def _size(nbytes: int) -> str:
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / 2**20:.1f} MiB"


def _meminfo_kb(field: str) -> int | None:
    return _field_kb("/proc/meminfo", field)


def _status_kb(field: str) -> int | None:
    return _field_kb(f"/proc/{os.getpid()}/status", field)


def _field_kb(path: str, field: str) -> int | None:
    """A ``<field>: <n> kB`` line of a /proc file (Linux), or None elsewhere."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name == field:
                    return int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None
