"""Which process wrote a run, and whether that process is still the one alive under its pid.

A pid alone cannot say "still running": after a kill, a reboot or in a fresh container the
same number soon belongs to another program. A run therefore records its process's identity:
the pid, the process's start time (``/proc/<pid>/stat`` field 22, in clock ticks since boot),
the boot id (``/proc/sys/kernel/random/boot_id``, new at every boot) and the host name. Off
Linux the start time and boot id are unknown (None) and the check falls back to the pid.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None when unknown or gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may hold spaces or ')' itself:
    # the fields after the last ')' start at field 3, so field 22 is the 20th of them.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    """This boot's id (Linux), or None where the system does not have one."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """The identity of process ``pid`` (this process by default), as summary.json records it:
    ``pid``, ``start_ticks``, ``boot_id`` and ``host`` (the last three None when unknown)."""
    pid = os.getpid() if pid is None else pid
    return {
        "pid": pid,
        "start_ticks": start_ticks(pid),
        "boot_id": boot_id(),
        "host": socket.gethostname() or None,
    }


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OSError:
        return False
    return True


def process_alive(pid: Any, identity: Mapping[str, Any] | None = None) -> bool:
    """True while the process that wrote ``identity`` (or, for an older summary without one,
    some process with ``pid``) still runs.

    False when the pid is invalid or gone, when the machine has rebooted since (another boot
    id), or when the pid now belongs to a process started at another time (a reused pid).
    A process on another host cannot be checked from here: it is trusted to run.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    identity = identity or {}
    host = identity.get("host")
    if host and host != socket.gethostname():
        return True
    recorded_boot = identity.get("boot_id")
    if recorded_boot and boot_id() not in (None, recorded_boot):
        return False
    recorded_start = identity.get("start_ticks")
    if recorded_start is None:
        # No identity (an older summary): the pid is all there is. This very process reading
        # it is not that run (a container restarted with the same pid), as before.
        return pid != os.getpid() and _pid_exists(pid)
    if not _pid_exists(pid):
        return False
    now = start_ticks(pid)
    return now is None or now == recorded_start
