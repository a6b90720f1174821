"""A task's process group dies with the worker that started it, however the worker dies.

Every task process group is led by a tiny watcher: `/bin/sh`, started by the worker, that
blocks reading a pipe whose only write end the worker holds. The task joins the watcher's
group before it execs (`process_group=`), so the task is still the worker's direct child
(exit code, signal and exec errors are reported exactly as before; argv is never seen by a
shell) and a timeout or cancel still kills the whole group with one killpg.

When the worker exits, whichever way (SIGKILL, OOM killer, a crash, a normal exit), the kernel
closes its descriptors: the watcher's read returns end-of-file and it runs `kill -KILL 0`,
killing everything still in the group (grandchildren included). No prctl, no preexec_fn,
no per-task Python: one extra small process per running task, reaped by the worker.

Race-free by construction: the watcher exists before the task is forked, and a forked child
keeps its copy of the (close-on-exec) write end until it execs, which is after it joined
the group; so end-of-file cannot reach the watcher while a task could still escape it.

The watcher ignores the catchable signals a group receives (the worker's SIGTERM on timeout
or cancel, a task's own `kill 0` or `trap 'kill 0' EXIT`), so it outlives the grace period
and is killed only by SIGKILL: the worker's at the end of every task, or its own.
A process that leaves the group itself (`setsid`, a job-control shell) escapes, as it did.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import threading

SHELL = "/bin/sh"
IGNORED = "HUP INT QUIT TERM USR1 USR2 ALRM PIPE TSTP TTIN TTOU XCPU XFSZ VTALRM PROF"
WATCH_SCRIPT = f"trap '' {IGNORED}; while read -r _; do :; done; kill -KILL 0"

_lock = threading.Lock()
_pipe: tuple[int, int] | None = None  # (read end, write end); the write end is never written


def _read_end() -> int:
    """The lifeline's read end, created on first use; both ends are close-on-exec."""
    global _pipe
    with _lock:
        if _pipe is None:
            _pipe = os.pipe()
        return _pipe[0]


def _forget_after_fork() -> None:
    """A forked (not exec'd) copy of the worker must not keep the worker's tasks alive."""
    global _pipe, _lock
    _lock = threading.Lock()
    if _pipe is not None:
        for fd in _pipe:
            with contextlib.suppress(OSError):
                os.close(fd)
        _pipe = None


os.register_at_fork(after_in_child=_forget_after_fork)


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Lifeline:
    """The leader of one task's process group; `pgid` is what the task joins and what is killed.

    The leader is this worker's child and keeps the group id from being reused until
    `close` has killed the group and reaped it.
    """

    __slots__ = ("_leader", "pgid")

    def __init__(self) -> None:
        """Start the watcher (synchronous, like any spawn); OSError if it cannot start."""
        try:
            self._leader = subprocess.Popen(
                [SHELL, "-c", WATCH_SCRIPT, "dagbroker-lifeline"], stdin=_read_end(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env={},
                process_group=0,
            )
        except OSError as e:
            raise OSError(e.errno, f"cannot start the task's group leader {SHELL}: "
                                   f"{e.strerror}") from e
        self.pgid = self._leader.pid

    def signal(self, sig: int) -> None:
        signal_group(self.pgid, sig)

    def close(self) -> None:
        """SIGKILL whatever is left in the group; the leader is reaped off the task's path."""
        self.signal(signal.SIGKILL)
        if self._leader.poll() is None:  # usually: the SIGKILL takes a moment to land
            _dying.add(self._leader)
            _sweep_soon()


# Killed leaders not reaped yet: referenced until reaped (no zombies, no ResourceWarning).
_dying: set[subprocess.Popen[bytes]] = set()
_sweep_on: asyncio.AbstractEventLoop | None = None  # the loop a sweep is scheduled on


def _sweep_soon(delay_s: float = 0.002) -> None:
    global _sweep_on
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop: reap right away (a SIGKILLed sh dies at once)
        for leader in list(_dying):
            leader.wait()
            _dying.discard(leader)
        return
    if _sweep_on is loop:  # (a sweep pending on a loop since closed does not count)
        return
    _sweep_on = loop
    loop.call_later(delay_s, _sweep, delay_s)


def _reap_at_exit() -> None:
    """Leaders killed in the last milliseconds before the worker exits (bounded wait)."""
    for leader in list(_dying):
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=1.0)


atexit.register(_reap_at_exit)


def _sweep(delay_s: float) -> None:
    global _sweep_on
    _sweep_on = None
    for leader in list(_dying):
        if leader.poll() is not None:
            _dying.discard(leader)
    if _dying:
        _sweep_soon(min(delay_s * 2, 1.0))
