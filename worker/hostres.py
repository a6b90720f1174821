"""What this host offers by default: cores, memory (MiB) and GPUs, read once at startup.

Used only where settings are built (WorkerSettings defaults, the CLI); the worker itself
never looks at the host again. `--cores`, `--memory` and `--gpus` override each guess.
"""

from __future__ import annotations

import glob
import os
import re

MEMINFO = "/proc/meminfo"
NVIDIA_DEVICES = "/dev/nvidia[0-9]*"


def host_cores() -> float:
    """CPUs this process may run on (sched_getaffinity), else os.cpu_count(), else 1."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def meminfo_total_mb(text: str) -> int | None:
    """MemTotal of a /proc/meminfo text, in MiB (None when absent)."""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) // 1024 if m else None


def host_memory_mb() -> int:
    """MemTotal from /proc/meminfo, else physical pages × page size; at least 1."""
    try:
        with open(MEMINFO, encoding="ascii") as f:
            total = meminfo_total_mb(f.read())
    except OSError:
        total = None
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        except (AttributeError, ValueError, OSError):
            total = 1
    return max(1, total)


def host_gpus() -> int:
    """NVIDIA GPUs visible as /dev/nvidia0, /dev/nvidia1, … (0 when none)."""
    return len(glob.glob(NVIDIA_DEVICES))
