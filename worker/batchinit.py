"""`init`: a node's command run once per batch on the worker, before the batch's tasks.

For the local executors (shell, python), batchrun.py calls `run_inits` once the batch's
tasks are marked running (stale ones dropped) and before the executor gets them. A batch is
one executor call, so with `worker --batch-max 1` init runs before every task. The ssh and
slurm executors run it themselves, where their tasks run (ssh_init.py: once per host over
the batch's connection; slurm_init.py: one sbatch job the batch's arrays depend on), with the
rendering, grouping, reasons and log copy defined here.

The command is rendered with the **run parameters only** (`{{ name }}` of `params`; not the
matrix variables or the built-ins like `{{ node }}`, which differ between the tasks it runs
for): a string runs under `/bin/sh -c` with values shell-quoted, a list runs as argv. Its env
is the worker's environment plus the node's `env` (rendered the same way); its cwd is the
node's `workdir` (rendered), else the worker's; its timeout is the node's `timeout`. It runs
in its own process group (process.py: killed on timeout, and with the worker).

Tasks of one batch whose rendered init (command, env, workdir, timeout) is the same share one
run; tasks without init need none. Its output goes to `{data_dir}/logs/_init/{ms}-{n}.log`
and is appended (the last INIT_COPY_BYTES of it) to each of its tasks' logs, live logs too.
If it fails, each of those tasks fails without running: `init failed: exit N` (or `timed out
after Ns`, `killed by signal S`, `cannot start …`, `unknown placeholder {{ x }}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.core.template import render
from broker.wire import Outcome
from worker.executors.attempt import end_unrun
from worker.executors.outcome import signal_name
from worker.executors.paths import AttemptPaths
from worker.executors.process import now_ms, run_process
from worker.logship import LogShipper

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from broker.wire import Completion, TaskMessage
    from worker.executors.base import ExecContext
    from worker.executors.process import ProcessResult
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

INIT_EXECUTORS = frozenset({"shell", "python"})  # run here, on the worker
SELF_INIT_EXECUTORS = frozenset({"ssh", "slurm"})  # run by the executor, where its tasks run
FAILED_PREFIX = "init failed: "
SHELL = "/bin/sh"
INIT_COPY_BYTES = 64 * 1024  # of the init's output, copied into each task's log
_seq = itertools.count(1)


class InitError(Exception):
    """The init cannot be rendered (the reason, after `init failed: `)."""


@dataclass(frozen=True)
class InitCommand:
    """One init to run: tasks with equal ones share a run."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # the node's env, rendered
    cwd: str | None
    timeout_s: float | None

    def shown(self) -> str:
        return self.argv[2] if self.argv[:2] == (SHELL, "-c") else " ".join(self.argv)


def init_command(msg: TaskMessage) -> InitCommand | None:
    """The task's init rendered with the run parameters; None if it has none."""
    spec, params = msg.spec, msg.params
    init = spec.init
    if not init:
        return None
    try:
        argv: tuple[str, ...]
        if isinstance(init, str):
            argv = (SHELL, "-c", render(init, params, shell_quote=True))
        else:
            argv = tuple(render(a, params) for a in init)
        env = tuple(sorted((k, render(v, params)) for k, v in spec.env.items()))
        cwd = render(spec.workdir, params) if spec.workdir else None
    except KeyError as e:
        raise InitError(f"unknown placeholder {{{{ {e.args[0]} }}}}") from e
    return InitCommand(argv, env, cwd, spec.timeout_s)


def reason_for(code: int | None, *, signal: str = "", timed_out: bool = False,
               timeout_s: float | None = None) -> str:
    """Pure: '' when the init succeeded, else why (after `init failed: `). signal: its name
    (SIGTERM) when a signal ended it."""
    if timed_out:
        return f"timed out after {timeout_s}s"
    if signal:
        return f"killed by signal {signal}"
    return f"exit {code}" if code else ""


def failure_reason(proc: ProcessResult, timeout_s: float | None) -> str:
    """'' when the local init process succeeded, else why (after `init failed: `)."""
    code = proc.returncode
    return reason_for(code, signal=signal_name(-code) if code < 0 else "",
                      timed_out=proc.timed_out, timeout_s=timeout_s)


def init_log_path(data_dir: Path, name: str = "") -> Path:
    """Where an init's own output is kept on the worker: `{data_dir}/logs/_init/…`."""
    return data_dir / "logs" / "_init" / f"{name or f'{now_ms()}-{next(_seq)}'}.log"


async def all_stopped(handles: Sequence[TaskHandle], stop: asyncio.Event) -> None:
    """Set `stop` once every one of these tasks is stopped (cancel, shutdown): the init they
    wait for is stopped then too."""
    await asyncio.gather(*(h.stop_event().wait() for h in handles))
    stop.set()


def copy_text(log: Path, cmd: InitCommand, n_tasks: int, end: str) -> bytes:
    """Blocking: what goes into each task's log: a header, the init output (its tail), the end."""
    try:
        with log.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - INIT_COPY_BYTES))
            out = f.read()
    except FileNotFoundError:
        size, out = 0, b""
    head = f"[dagbroker] init, once for {n_tasks} task(s) of this batch: {cmd.shown()}\n"
    if size > len(out):
        head += f"[dagbroker] (first {size - len(out)} bytes left out; all of it in {log})\n"
    if out and not out.endswith(b"\n"):
        out += b"\n"
    return head.encode() + out + f"[dagbroker] init {end}\n".encode()


def append_logs(paths: Sequence[Path], text: bytes) -> None:
    """Blocking: append text to every task log."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(text)


async def _copy_to_task_logs(
    handles: Sequence[TaskHandle], ctx: ExecContext, text: bytes
) -> None:
    """Append to the tasks' log files and ship those lines to their live logs."""
    logs = [AttemptPaths.for_task(ctx.data_dir, h.msg).log for h in handles]
    shippers = [LogShipper(ctx.redis, ctx.keys, h.msg, p) for h, p in zip(handles, logs,
                                                                        strict=True)]
    await asyncio.to_thread(append_logs, logs, text)
    for shipper in shippers:
        with contextlib.suppress(Exception):  # Redis away: the files keep everything
            await shipper.flush(final=True)


async def _run_init(
    cmd: InitCommand, handles: Sequence[TaskHandle], ctx: ExecContext
) -> tuple[str, int]:
    """Run it once for these tasks. → (why it failed, '' if it did not; started at ms)."""
    log = init_log_path(ctx.data_dir)
    stop = asyncio.Event()  # a stop of every task (cancel, shutdown) ends the init too
    watcher = asyncio.create_task(all_stopped(handles, stop))
    started_at_ms = now_ms()
    try:
        proc = await run_process(
            list(cmd.argv), env={**ctx.base_env, **dict(cmd.env)}, cwd=cmd.cwd, log_path=log,
            timeout_s=cmd.timeout_s, stop=stop, kill_grace_s=ctx.kill_grace_s,
        )
    except OSError as e:
        reason = f"cannot start {cmd.argv[0]!r}: {e}"
        end = f"failed: {reason}"
    else:
        reason = "" if proc.stopped else failure_reason(proc, cmd.timeout_s)
        secs = (proc.finished_at_ms - proc.started_at_ms) / 1000
        end = (f"exit {proc.returncode} ({secs:.2f} s)" if not proc.timed_out
               else f"timed out after {cmd.timeout_s}s")
    finally:
        watcher.cancel()
    logger.info("init for %d task(s) %s: %s", len(handles), "failed" if reason else "done",
                reason or cmd.shown())
    text = await asyncio.to_thread(copy_text, log, cmd, len(handles), end)
    await _copy_to_task_logs(handles, ctx, text)
    return reason, started_at_ms


async def _fail_all(
    handles: Sequence[TaskHandle], ctx: ExecContext, reason: str, started_at_ms: int
) -> list[tuple[TaskHandle, Completion]]:
    done = await asyncio.gather(*(
        end_unrun(h, ctx, Outcome.FAILED, FAILED_PREFIX + reason, started_at_ms)
        for h in handles
    ))
    return list(zip(handles, done, strict=True))


def group_by_init(
    handles: Sequence[TaskHandle],
) -> tuple[dict[InitCommand, list[TaskHandle]], list[TaskHandle], list[tuple[TaskHandle, str]]]:
    """→ (tasks by init, tasks without one, tasks whose init cannot be rendered)."""
    groups: dict[InitCommand, list[TaskHandle]] = {}
    free: list[TaskHandle] = []
    bad: list[tuple[TaskHandle, str]] = []
    for h in handles:
        try:
            cmd = init_command(h.msg)
        except InitError as e:
            bad.append((h, str(e)))
            continue
        if cmd is None:
            free.append(h)
        else:
            groups.setdefault(cmd, []).append(h)
    return groups, free, bad


async def run_inits(
    executor: str, handles: Sequence[TaskHandle], ctx: ExecContext
) -> tuple[list[tuple[TaskHandle, Completion]], list[TaskHandle]]:
    """Run the batch's init(s). → (completions of tasks whose init failed, tasks to run)."""
    if not any(h.msg.spec.init for h in handles):
        return [], list(handles)
    if executor in SELF_INIT_EXECUTORS:
        return [], list(handles)  # the executor runs it (ssh_init.py, slurm_init.py)
    if executor not in INIT_EXECUTORS:
        logger.warning("init is not run for %s tasks (only for %s)", executor,
                       ", ".join(sorted(INIT_EXECUTORS)))
        return [], list(handles)
    groups, todo, bad = group_by_init(handles)
    failed: list[tuple[TaskHandle, Completion]] = []
    for h, reason in bad:
        failed += await _fail_all([h], ctx, reason, now_ms())
    cmds = list(groups)
    outcomes = await asyncio.gather(*(_run_init(c, groups[c], ctx) for c in cmds))
    for cmd, (reason, started_at_ms) in zip(cmds, outcomes, strict=True):
        if reason:
            failed += await _fail_all(groups[cmd], ctx, reason, started_at_ms)
        else:
            todo += groups[cmd]
    return failed, todo
