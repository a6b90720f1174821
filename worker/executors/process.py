"""Run one subprocess in its own process group, with timeout and stop, output to a log file.

Killing always targets the whole group: SIGTERM, then SIGKILL after kill_grace_s (or as
soon as the main process is gone). A task's process group is also killed when its main
process exits, so nothing it started outlives the slot it used, and when the worker itself
dies, however it dies: the group is led by a lifeline watcher (see lifeline.py) that kills
it as soon as the worker is gone. The task process is still the worker's direct child.

With a memory cgroup (memlimit.py), the task joins it before it execs (a /bin/sh that writes
its own pid to cgroup.procs, then execs argv), and a failed process whose cgroup saw an OOM
kill is reported with `oom_limit_mb` set. The program is looked up first, so a missing one is
still an OSError rather than the shell's exit 127.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import time
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, TypeVar

from worker.executors.lifeline import Lifeline, signal_group
from worker.executors.memlimit import wrap_argv

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence
    from pathlib import Path

    from worker.executors.memlimit import TaskCgroup

__all__ = ["ProcessResult", "kill_group", "now_ms", "oom_result", "race_stop", "run_process",
    "signal_group",]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    timed_out: bool
    stopped: bool  # the stop event was set (cancel or shutdown)
    started_at_ms: int
    finished_at_ms: int
    oom_limit_mb: int | None = None  # failed, and the kernel OOM-killed in its memory cgroup


def now_ms() -> int:
    return int(time.time() * 1000)


async def kill_group(
    proc: asyncio.subprocess.Process, grace_s: float, pgid: int | None = None
) -> None:
    """SIGTERM the group, wait for the main process up to grace_s, SIGKILL the group."""
    pgid = proc.pid if pgid is None else pgid
    signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace_s)
    signal_group(pgid, signal.SIGKILL)
    await proc.wait()


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


async def race_stop(
    aw: Awaitable[T], stop: asyncio.Event, timeout_s: float | None
) -> tuple[asyncio.Future[T] | None, bool, bool]:
    """Wait for `aw`, a stop request or the timeout, whichever comes first.
    → (aw's finished future, or None; timed_out; stopped). `aw` is cancelled if it lost."""
    fut = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {fut, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopper.cancel()
        fut.cancel()
    if fut in done:
        return fut, False, False
    return None, stopper not in done, stopper in done


async def _wait_exit(
    proc: asyncio.subprocess.Process, stop: asyncio.Event, timeout_s: float | None
) -> tuple[bool, bool]:
    """→ (timed_out, stopped); both False when the process exited by itself."""
    _, timed_out, stopped = await race_stop(proc.wait(), stop, timeout_s)
    return timed_out, stopped


async def _spawn(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, log: IO[bytes], pgid: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
        env=dict(env), cwd=cwd, process_group=pgid,
    )


def _check_program(program: str, env: Mapping[str, str], cwd: str | None) -> None:
    """OSError unless `program` is an executable file (as exec would find it)."""
    if "/" in program:
        found = os.path.join(cwd or ".", program)
        if not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise FileNotFoundError(errno.ENOENT, "No such executable file", program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, "No such executable file in PATH", program)


async def oom_result(
    result: ProcessResult, cgroup: TaskCgroup | None, before: int = 0
) -> ProcessResult:
    """`result`, with oom_limit_mb set if it failed and `cgroup` counts OOM kills past `before`."""
    if cgroup is None or result.returncode == 0 or await cgroup.oom_kills() <= before:
        return result
    return replace(result, oom_limit_mb=cgroup.memory_mb)


async def run_process(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None, log_path: Path,
    timeout_s: float | None, stop: asyncio.Event, kill_grace_s: float,
    cgroup: TaskCgroup | None = None,
) -> ProcessResult:
    """Spawn argv (no shell) and wait; OSError if it cannot start (missing program or cwd).
    With `cgroup`, the process joins that memory cgroup before it execs."""
    if cgroup is not None:
        await asyncio.to_thread(_check_program, argv[0], env, cwd)
        argv = wrap_argv(list(argv), cgroup)
    log = await asyncio.to_thread(_open_log, log_path)
    try:
        lifeline = Lifeline()  # the group's leader: the group dies if this worker does
    except BaseException:
        log.close()
        raise
    try:
        try:
            proc = await _spawn(argv, env, cwd, log, lifeline.pgid)
        finally:
            log.close()
        started_at_ms = now_ms()
        try:
            timed_out, stopped = await _wait_exit(proc, stop, timeout_s)
        except BaseException:  # the worker itself is being cancelled: leave nothing behind
            await asyncio.shield(kill_group(proc, kill_grace_s, lifeline.pgid))
            raise
        if timed_out or stopped:
            await kill_group(proc, kill_grace_s, lifeline.pgid)
    finally:
        lifeline.close()  # SIGKILL leftovers of the task, and the leader
    assert proc.returncode is not None
    result = ProcessResult(proc.returncode, timed_out, stopped, started_at_ms, now_ms())
    return await oom_result(result, cgroup)
