"""Enforce a task's `resources.memory` with a child memory cgroup of the worker's own cgroup.

Detected once per worker process (`cgroup_base`): the worker's memory cgroup, v1 (a
`N:...memory...:/path` line in /proc/self/cgroup, the `memory` hierarchy's mount) or v2
(`0::/path`, the cgroup2 mount, `+memory` enabled in our `cgroup.subtree_control`), and a
probe child created and removed there. Where that fails (not mounted, read-only, no
permission, v2 memory controller not available to children), enforcement is off: tasks run
unlimited, as before, and the first task that asks for memory logs it once at INFO.

Per task attempt with `memory_mb` (a warm interpreter: per interpreter), `create_cgroup` makes
`dagb-<runner>-<run>-<node>-<attempt>` with the limit (v1: memory and memory+swap, so it cannot
swap past it; v2: memory.max, and memory.swap.max 0). The task joins it before it execs
(`wrap_argv`: a /bin/sh that writes its own pid to cgroup.procs, then execs the task's argv
unchanged), so everything it starts is limited too. A process past the limit is killed by the
kernel's OOM killer; `TaskCgroup.oom_kills` reads the cgroup's `oom_kill` counter, so the
attempt can be reported as out of memory. `TaskCgroup.remove` rmdirs it once its processes
are dead (retried briefly, logged, never failing the task).

Every file operation runs in a thread (`asyncio.to_thread`): cgroupfs writes can block.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CgroupBase", "TaskCgroup", "cgroup_base", "cgroup_name", "create_cgroup", "wrap_argv",
]

logger = logging.getLogger(__name__)

PREFIX = "dagb-"
NAME_MAX = 200  # cgroup dir names are file names (255 bytes); keep well below
REMOVE_TRIES = 50
REMOVE_PAUSE_S = 0.02
JOIN_SCRIPT = 'echo $$ > "$0" && exec "$@"'  # the pid written is the task's: exec keeps it
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class CgroupBase:
    """The worker's memory cgroup, where task cgroups are created."""

    path: Path
    version: int  # 1 or 2


@dataclass(frozen=True, slots=True)
class TaskCgroup:
    """One task's (or warm interpreter's) memory cgroup."""

    path: Path
    version: int
    memory_mb: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    async def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup so far (0 if unreadable)."""
        return await asyncio.to_thread(_read_oom_kills, self)

    async def remove(self) -> None:
        """rmdir once its processes are gone (retried briefly); a failure is only logged."""
        await asyncio.to_thread(_remove, self.path)


def wrap_argv(argv: list[str], cgroup: TaskCgroup) -> list[str]:
    """argv that joins `cgroup` before it execs; the task's argv is never parsed by the shell."""
    return ["/bin/sh", "-c", JOIN_SCRIPT, str(cgroup.procs), *argv]


def cgroup_name(runner: str, run: str, node: str, attempt: int) -> str:
    """`dagb-<runner>-<run>-<node>-<attempt>`, safe as one dir name, shortened with a hash."""
    name = PREFIX + _UNSAFE.sub("_", f"{runner}-{run}-{node}-{attempt}")
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:NAME_MAX - 17]}-{digest}"


# -- detection (once per process) -----------------------------------------------------------
_lock = threading.Lock()
_detected = False
_base: CgroupBase | None = None
_why_off = ""
_told_off = False


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, fs type, super options) of every cgroup mount."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in {"cgroup", "cgroup2"}:
            out.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return out


def _under(mount_root: str, mount_point: str, path: str) -> Path | None:
    """The directory of cgroup `path` in a mount whose root is `mount_root`."""
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root + "/")):
        return None
    rel = path[len(mount_root):] if mount_root != "/" else path
    return Path(mount_point) / rel.lstrip("/")


def _find_base() -> CgroupBase:
    """The worker's memory cgroup (v1 preferred on hybrid hosts); OSError if there is none."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    mounts = _mounts()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            for root, point, fs, opts in mounts:
                if fs == "cgroup" and "memory" in opts and (d := _under(root, point, path)):
                    return CgroupBase(d, 1)
    for line in lines:
        if line.startswith("0::"):
            for root, point, fs, _ in mounts:
                if fs == "cgroup2" and (d := _under(root, point, line[3:])):
                    return CgroupBase(d, 2)
    raise OSError(errno.ENOENT, "no memory cgroup (v1 memory hierarchy or cgroup2) mounted")


def _enable_v2(base: Path) -> None:
    control = base / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")


def _probe() -> CgroupBase:
    """Find the base and check a limited child can be made there; OSError if not."""
    base = _find_base()
    if base.version == 2:
        _enable_v2(base.path)
    probe = base.path / f"{PREFIX}probe-{os.getpid()}-{threading.get_ident()}"
    probe.mkdir()
    try:
        limit = probe / ("memory.limit_in_bytes" if base.version == 1 else "memory.max")
        if not limit.exists():
            raise OSError(errno.ENOTSUP, f"{probe} has no {limit.name}")
    finally:
        probe.rmdir()
    return base


def _detect() -> CgroupBase | None:
    global _detected, _base, _why_off
    with _lock:
        if not _detected:
            try:
                _base = _probe()
                logger.debug("memory limits enforced in cgroup v%d %s", _base.version, _base.path)
            except (OSError, ValueError) as e:
                _base, _why_off = None, str(e)
            _detected = True
        return _base


async def cgroup_base() -> CgroupBase | None:
    """The worker's memory cgroup, or None when task memory limits cannot be enforced."""
    return await asyncio.to_thread(_detect)


def enforcement_off_reason() -> str:
    """Why detection found no usable cgroup ('' if on or not detected yet)."""
    return _why_off


# -- one task's cgroup ----------------------------------------------------------------------
def _write(path: Path, value: str) -> None:
    with path.open("w") as f:
        f.write(value)


def _make(base: CgroupBase, name: str, memory_mb: int) -> TaskCgroup:
    path = base.path / name
    path.mkdir(exist_ok=True)  # a retried attempt of a dead worker may have left it
    limit = str(memory_mb * 1024 * 1024)
    try:
        if base.version == 1:
            _write(path / "memory.limit_in_bytes", limit)
            memsw = path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, limit)
        else:
            _write(path / "memory.max", limit)
            swap = path / "memory.swap.max"
            if swap.exists():
                _write(swap, "0")
    except BaseException:
        _remove(path)
        raise
    return TaskCgroup(path, base.version, memory_mb)


async def create_cgroup(name: str, memory_mb: int | None) -> TaskCgroup | None:
    """A new cgroup limited to memory_mb, or None (no limit asked, or not enforceable here)."""
    global _told_off
    if not memory_mb:
        return None
    base = await cgroup_base()
    if base is None:
        if not _told_off:
            _told_off = True
            logger.info("resources.memory is not enforced on this host: %s", _why_off)
        return None
    try:
        return await asyncio.to_thread(_make, base, name, memory_mb)
    except OSError as e:
        logger.warning("cannot create memory cgroup %s (task runs unlimited): %s", name, e)
        return None


def _read_oom_kills(cg: TaskCgroup) -> int:
    name = "memory.oom_control" if cg.version == 1 else "memory.events"
    try:
        text = (cg.path / name).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _remove(path: Path) -> None:
    for _ in range(REMOVE_TRIES):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                logger.warning("cannot remove memory cgroup %s: %s", path, e)
                return
        time.sleep(REMOVE_PAUSE_S)  # in a thread: its last processes are still exiting
    with contextlib.suppress(OSError):
        left = (path / "cgroup.procs").read_text().split()
        logger.warning("memory cgroup %s left in place: processes %s still in it", path, left)
