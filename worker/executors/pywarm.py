"""Warm interpreters for python `callable` tasks: a batch imports once and runs many tasks.

A batch's callable tasks are shared out over a few lanes (min(tasks, CPU count)); each lane
takes the next task from a shared queue and runs it in its interpreter, `python -m
worker.pyserve` (see pyserve.py), one task at a time. Everything around the run is the
ordinary attempt (attempt.py: inputs, env, live log, result and error files, outputs, the
Completion); only `WarmLane.run` differs from spawning a process.

An interpreter serves only tasks with the same workdir and the same environment apart from
the per-task DAGB_* variables (`interpreter_key`): the environment a Python process starts
with (PYTHONPATH, thread settings read at import, …) and the modules it imported from its
workdir must be right for every task it runs. A task of another key retires the lane's
interpreter and starts one of its own.

An interpreter runs in its own process group led by a lifeline (lifeline.py), so it dies
with the worker. A timeout or cancel kills that group, as for a process of its own, and the
lane starts a fresh interpreter for its next task; so does a task that ends the interpreter
(os._exit, a crash), which fails alone, and one that leaves processes running in the group
(they are killed with it, as when a task's own process ends).

Memory: tasks of one batch share their resources (the batch key includes them), so an
interpreter gets one memory cgroup (memlimit.py) with the batch's `memory_mb` when it starts,
and joins it before it execs. When the kernel OOM-kills in it, the task that was running is
the one reported out of memory; an interpreter that died is replaced by a fresh one (in a
fresh cgroup) for the lane's next task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from worker.executors.lifeline import Lifeline
from worker.executors.memlimit import TaskCgroup, cgroup_name, create_cgroup, wrap_argv
from worker.executors.process import ProcessResult, kill_group, now_ms, race_stop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from broker.wire import Completion
    from worker.executors.attempt import Prepared, ProcessRunner
    from worker.executors.base import ExecContext
    from worker.executors.paths import AttemptPaths
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

# Set for each task inside the interpreter; they do not decide which interpreter it runs in.
PER_TASK_ENV = frozenset({
    "DAGB_RUN", "DAGB_NODE", "DAGB_TASK", "DAGB_ATTEMPT", "DAGB_RESULT", "DAGB_INPUTS",
    "DAGB_KWARGS", "DAGB_ERROR",
})

InterpreterKey = tuple[str | None, tuple[tuple[str, str], ...]]


def interpreter_key(prep: Prepared) -> InterpreterKey:
    """Tasks with equal keys may share an interpreter: same cwd, same env but DAGB_*."""
    shared = sorted((k, v) for k, v in prep.env.items() if k not in PER_TASK_ENV)
    return prep.cwd, tuple(shared)


def lane_count(n_tasks: int) -> int:
    return max(1, min(n_tasks, os.cpu_count() or 1))


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


class Interpreter:
    """One `python -m worker.pyserve` in its own process group."""

    def __init__(self, key: InterpreterKey, proc: asyncio.subprocess.Process,
                 lifeline: Lifeline, cgroup: TaskCgroup | None = None) -> None:
        self.key = key
        self.proc = proc
        self.lifeline = lifeline
        self.alive = True
        self.group_ended = False
        self.cgroup = cgroup  # its memory cgroup (removed when it closes), if limited
        self.oom_kills = 0  # OOM kills in the cgroup already blamed on earlier tasks

    @classmethod
    async def start(
        cls, key: InterpreterKey, prep: Prepared, first_log: Path,
        cgroup: TaskCgroup | None = None,
    ) -> Interpreter:
        """Spawn it (its startup errors go to the first task's log), in `cgroup` if given;
        OSError if it cannot."""
        env = {k: v for k, v in prep.env.items() if k not in PER_TASK_ENV}
        argv = [sys.executable, "-m", "worker.pyserve"]
        if cgroup is not None:
            argv = wrap_argv(argv, cgroup)
        log = await asyncio.to_thread(_open_log, first_log)
        try:
            lifeline = Lifeline()
        except BaseException:
            log.close()
            raise
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, env=env, cwd=prep.cwd,
                process_group=lifeline.pgid,
            )
        except BaseException:
            lifeline.close()
            raise
        finally:
            log.close()
        logger.debug("warm interpreter %d started (cwd %s)", proc.pid, prep.cwd)
        return cls(key, proc, lifeline, cgroup)

    async def _send(self, line: bytes) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line)
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    async def _answer(
        self, stop: asyncio.Event, timeout_s: float | None
    ) -> tuple[bytes | None, bool, bool]:
        """→ (answer line, or None if it ended; timed_out; stopped)."""
        assert self.proc.stdout is not None
        line, timed_out, stopped = await race_stop(self.proc.stdout.readline(), stop, timeout_s)
        if line is not None:
            return line.result() or None, False, False
        return None, timed_out, stopped

    async def run(
        self, handle: TaskHandle, prep: Prepared, paths: AttemptPaths, grace_s: float
    ) -> ProcessResult:
        """Run one task here; afterwards `alive` says whether it can take another."""
        spec = handle.msg.spec
        job = {"callable": spec.callable, "env": prep.env, "cwd": prep.cwd, "log": str(paths.log)}
        await asyncio.to_thread(paths.log.parent.mkdir, parents=True, exist_ok=True)
        started_at_ms = now_ms()
        timed_out = stopped = False
        try:
            answer = None
            if await self._send(json.dumps(job).encode() + b"\n"):
                answer, timed_out, stopped = await self._answer(handle.stop_event(), spec.timeout_s)
        except BaseException:  # the worker itself is being cancelled: leave nothing behind
            self.alive = False
            await asyncio.shield(self.kill(grace_s))
            raise
        if answer is not None:
            word, code, *rest = answer.decode().split()
            assert word == "done", answer
            self.alive = not rest  # "stray": processes left in the group
            return ProcessResult(int(code), False, False, started_at_ms, now_ms())
        self.alive = False
        if timed_out or stopped:
            await self.kill(grace_s)
        else:  # it ended during the task (os._exit, a crash): the task's exit code
            await self.proc.wait()
        self._end_group()
        assert self.proc.returncode is not None
        return ProcessResult(self.proc.returncode, timed_out, stopped, started_at_ms, now_ms())

    async def blame_oom(self, result: ProcessResult) -> ProcessResult:
        """`result` of the task just run, marked out of memory if it failed and the kernel
        OOM-killed in this interpreter's cgroup since the previous task."""
        if self.cgroup is None or result.returncode == 0:
            return result
        kills = await self.cgroup.oom_kills()
        seen, self.oom_kills = self.oom_kills, kills
        return replace(result, oom_limit_mb=self.cgroup.memory_mb) if kills > seen else result

    async def kill(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL, the whole group (as a task process's on timeout)."""
        await kill_group(self.proc, grace_s, self.lifeline.pgid)
        self._end_group()

    def _end_group(self) -> None:
        """SIGKILL what is left of the group, once (the pgid must not be signalled after)."""
        if not self.group_ended:
            self.group_ended = True
            self.lifeline.close()

    async def close(self, grace_s: float) -> None:
        """No more tasks: end of file on stdin, then the group is killed (leftovers too)."""
        self.alive = False
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace_s)
        self._end_group()
        await self.proc.wait()
        if self.cgroup is not None:
            await self.cgroup.remove()


class WarmLane:
    """Runs tasks one after another, in an interpreter kept warm between them."""

    def __init__(self) -> None:
        self.interp: Interpreter | None = None
        self.memory_mb: int | None = None  # the memory the interpreter's tasks declare
        self.started = 0  # interpreters this lane started

    async def run(
        self, handle: TaskHandle, prep: Prepared, paths: AttemptPaths, ctx: ExecContext
    ) -> ProcessResult:
        """A ProcessRunner (attempt.py); OSError if no interpreter can start."""
        key = interpreter_key(prep)
        memory_mb = handle.msg.spec.memory_mb
        if self.interp is not None and (
            self.interp.key != key or not self.interp.alive or self.memory_mb != memory_mb
        ):
            await self.retire(ctx.kill_grace_s)
        if self.interp is None:
            self.interp = await self._start(key, handle, prep, paths, ctx)
            self.memory_mb = memory_mb
            self.started += 1
        interp = self.interp
        result = await interp.blame_oom(await interp.run(handle, prep, paths, ctx.kill_grace_s))
        if not interp.alive:
            await self.retire(ctx.kill_grace_s)
        return result

    @staticmethod
    async def _start(
        key: InterpreterKey, handle: TaskHandle, prep: Prepared, paths: AttemptPaths,
        ctx: ExecContext,
    ) -> Interpreter:
        """A new interpreter, in a memory cgroup of its own if its batch declares memory."""
        msg = handle.msg
        name = cgroup_name(ctx.runner_id, msg.run, msg.node, msg.attempt)
        cgroup = await create_cgroup(name, msg.spec.memory_mb)
        try:
            return await Interpreter.start(key, prep, paths.log, cgroup)
        except BaseException:
            if cgroup is not None:
                await asyncio.shield(cgroup.remove())
            raise

    async def retire(self, grace_s: float) -> None:
        interp, self.interp = self.interp, None
        if interp is not None:
            await interp.close(grace_s)


async def run_warm(
    handles: Sequence[TaskHandle], ctx: ExecContext,
    attempt: Callable[[TaskHandle, ProcessRunner], Awaitable[Completion]],
) -> list[Completion]:
    """Every handle through `attempt(handle, runner)` on one of the lanes; in order."""
    queue = list(enumerate(handles))
    queue.reverse()
    out: list[Completion | None] = [None] * len(handles)

    async def lane_loop(lane: WarmLane) -> None:
        try:
            while queue:
                i, handle = queue.pop()
                out[i] = await attempt(handle, lane.run)
        finally:
            await asyncio.shield(lane.retire(ctx.kill_grace_s))

    if not handles:
        return []
    lanes = [WarmLane() for _ in range(lane_count(len(handles)))]
    await asyncio.gather(*(lane_loop(lane) for lane in lanes))
    started = sum(lane.started for lane in lanes)
    logger.info("batch of %d python task(s) ran in %d warm interpreter(s)", len(handles),
                started)
    done = [c for c in out if c is not None]
    assert len(done) == len(handles)
    return done
