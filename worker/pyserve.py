"""`python -m worker.pyserve`: a warm interpreter of the python executor, many tasks in turn.

The worker starts it in a task process group (see executors/pywarm.py) and writes one task
per line on its stdin, as JSON: {"callable", "env", "cwd", "log"}. For each task it
  - points fd 1 and 2 at the task's log (appending), and fd 0 at /dev/null, as for a new
    process; sets os.environ to the task's env (DAGB_KWARGS, DAGB_INPUTS, DAGB_RESULT,
    DAGB_ERROR, … are per task) and changes to its cwd;
  - runs it exactly as `worker.pyrun` does (same result and error files, same exit codes;
    `sys.exit(n)` in the task ends the task with n, not the interpreter);
  - answers `done <exit>` on its original stdout, or `done <exit> stray` when the task left
    processes behind in the group (the worker then retires this interpreter, which kills them).
End of file on stdin ends it. A task that calls os._exit or crashes the interpreter ends it
too: the worker sees end of file on the answers and the exit code, exactly like a pyrun child.
Modules a task imports stay imported for the next task: that is the point.
Standard library only, like pyrun.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, TextIO

from worker import pyrun


def exit_code(code: Any) -> int:
    """What `sys.exit(code)` makes the interpreter exit with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_task(job: dict[str, Any]) -> int:
    """Run one task in this process (fds already redirected). → its exit code."""
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["cwd"] or START_DIR)
    sys.path[0] = os.getcwd()  # as `python -m` sets it for a new process
    try:
        return pyrun.main([job["callable"]])
    except SystemExit as e:
        return exit_code(e.code)


def _point(fds: tuple[int, ...], path: str, flags: int) -> None:
    fd = os.open(path, flags, 0o644)
    try:
        for target in fds:
            os.dup2(fd, target)
    finally:
        os.close(fd)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _group_leftovers() -> bool:
    """Reap finished children; True if a process other than this one and the group's leader
    is still in this process group (Linux /proc; elsewhere nothing is checked)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    pgrp, me = os.getpgrp(), os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        if pid in (me, pgrp):
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgrp and fields[0] != "Z":
            return True
    return False


def serve(requests: TextIO, answers: TextIO) -> int:
    append = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    for line in requests:
        job = json.loads(line)
        _point((1, 2), job["log"], append)
        code = run_task(job)
        _flush()
        _point((1, 2), os.devnull, os.O_WRONLY)
        stray = " stray" if _group_leftovers() else ""
        answers.write(f"done {code}{stray}\n")
        answers.flush()
    return 0


START_DIR = os.getcwd()


def main() -> int:
    # Keep the two pipes to the worker on private descriptors (not inherited by what a task
    # starts); fd 0 becomes /dev/null and fd 1 a task's log, as for a new process. fd 2 stays
    # where the worker pointed it (the first task's log) until the first task ends.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    _point((0,), os.devnull, os.O_RDONLY)
    _point((1,), os.devnull, os.O_WRONLY)
    return serve(requests, answers)


if __name__ == "__main__":
    sys.exit(main())
