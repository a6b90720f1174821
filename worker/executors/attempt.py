"""One attempt of a subprocess task, shared by the shell and python executors.

An executor only says *what* to run (`Launch`, built from the message and the template
values); this module renders env and workdir, writes DAGB_INPUTS, runs the process in its
own group (timeout, stop), and turns what happened into a Completion.

*How* the prepared attempt runs is a `ProcessRunner`: by default a new process
(`spawn_process`); the python executor passes one that hands a callable to a warm interpreter
(worker/executors/pywarm.py). Everything before and after (inputs, env, live log, outputs,
result and error files, the Completion) is the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from broker.artifacts import ArtifactError
from broker.core.template import render
from broker.wire import Completion, Outcome
from worker.artifacts import prepare_workdir, store_outputs
from worker.executors.inputs import fetch_inputs
from worker.executors.memlimit import cgroup_name, create_cgroup
from worker.executors.outcome import classify, parse_error, parse_result, tail_text
from worker.executors.paths import AttemptPaths
from worker.executors.process import ProcessResult, run_process
from worker.logs import task_extra
from worker.logship import LogShipper

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from broker.wire import TaskMessage
    from worker.executors.base import ExecContext
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

TAIL_READ_BYTES = 16 * 1024


class LaunchError(Exception):
    """The task's spec cannot be turned into a command (reported as the failure reason)."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[Path, str] = field(default_factory=dict)  # written before the start


class LaunchBuilder(Protocol):
    """What an executor provides: the command line of one task (raises LaunchError/KeyError)."""

    def __call__(
        self, msg: TaskMessage, values: Mapping[str, Any], paths: AttemptPaths, ctx: ExecContext
    ) -> Launch: ...


def now_ms() -> int:
    return int(time.time() * 1000)


def task_values(msg: TaskMessage) -> dict[str, Any]:
    """Template values: run params, then matrix vars, then the built-ins."""
    return {
        **msg.params, **(msg.vars or {}),
        "run": msg.run, "node": msg.node, "task": msg.tpl, "attempt": msg.attempt,
    }


def render_command(
    msg: TaskMessage, executor: str
) -> tuple[list[str], dict[str, str], str | None]:
    """(argv, the task's own env, workdir) with placeholders rendered, for executors that run a
    `command` elsewhere (slurm, ssh): a string runs under `/bin/sh -c` with every substituted
    value shell-quoted, a list runs as argv. LaunchError for a missing command or placeholder."""
    values = task_values(msg)
    command = msg.spec.command
    try:
        if isinstance(command, str):
            argv = ["/bin/sh", "-c", render(command, values, shell_quote=True)]
        elif isinstance(command, list) and command:
            argv = [render(arg, values) for arg in command]
        else:
            raise LaunchError(f"a {executor} task needs a command")
        env = {k: render(v, values) for k, v in msg.spec.env.items()}
        workdir = render(msg.spec.workdir, values) if msg.spec.workdir else None
    except KeyError as e:
        raise LaunchError(f"unknown placeholder {{{{ {e.args[0]} }}}}") from e
    return argv, env, workdir


def task_env(
    ctx: ExecContext, msg: TaskMessage, values: Mapping[str, Any], paths: AttemptPaths,
    extra: Mapping[str, str],
) -> dict[str, str]:
    env = dict(ctx.base_env)
    env.update({k: render(v, values) for k, v in msg.spec.env.items()})
    env.update(extra)
    env.update(
        DAGB_RUN=msg.run, DAGB_NODE=msg.node, DAGB_TASK=msg.tpl, DAGB_ATTEMPT=str(msg.attempt),
        DAGB_RESULT=str(paths.result), DAGB_INPUTS=str(paths.inputs),
    )
    return env


@dataclass(frozen=True)
class Prepared:
    """An attempt ready to start: its files are written and its inputs staged."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None


class ProcessRunner(Protocol):
    """Runs a prepared attempt to its end, output appended to `paths.log`, honouring the
    task's timeout and stop; OSError when it cannot start."""

    async def __call__(
        self, handle: TaskHandle, prep: Prepared, paths: AttemptPaths, ctx: ExecContext
    ) -> ProcessResult: ...


async def spawn_process(
    handle: TaskHandle, prep: Prepared, paths: AttemptPaths, ctx: ExecContext
) -> ProcessResult:
    """The default runner: a new process in its own group (see process.py), in a memory
    cgroup of its own when the task declares memory and the host can enforce it (memlimit.py)."""
    msg = handle.msg
    name = cgroup_name(ctx.runner_id, msg.run, msg.node, msg.attempt)
    cgroup = await create_cgroup(name, msg.spec.memory_mb)
    try:
        return await run_process(
            prep.argv, env=prep.env, cwd=prep.cwd, log_path=paths.log,
            timeout_s=msg.spec.timeout_s, stop=handle.stop_event(),
            kill_grace_s=ctx.kill_grace_s, cgroup=cgroup,
        )
    finally:
        if cgroup is not None:
            await asyncio.shield(cgroup.remove())


def _make_workdir(work: Path) -> None:
    """mkdir -p, tolerating another attempt's cleanup removing the (empty) run dir meanwhile."""
    for _ in range(5):
        try:
            work.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    work.mkdir(parents=True, exist_ok=True)


def _write_files(paths: AttemptPaths, inputs: dict[str, Any], files: Mapping[Path, str]) -> None:
    _make_workdir(paths.work)
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    for stale in (paths.result, paths.error):
        stale.unlink(missing_ok=True)
    paths.inputs.write_bytes(msgspec.json.encode(inputs))
    for path, text in files.items():
        path.write_text(text)


async def _prepare(
    msg: TaskMessage, ctx: ExecContext, build: LaunchBuilder, paths: AttemptPaths
) -> Prepared:
    values = task_values(msg)
    try:
        launch = build(msg, values, paths, ctx)
        cwd = render(msg.spec.workdir, values) if msg.spec.workdir else None
        env = task_env(ctx, msg, values, paths, launch.env)
    except KeyError as e:
        raise LaunchError(f"unknown placeholder {{{{ {e.args[0]} }}}}") from e
    if not launch.argv:
        raise LaunchError("nothing to run: the command is empty")
    inputs = await fetch_inputs(ctx.redis, ctx.keys, msg)
    await asyncio.to_thread(_write_files, paths, inputs, launch.files)
    try:
        cwd = await prepare_workdir(ctx, msg, paths.work, cwd)  # stages spec.inputs
    except ArtifactError as e:
        raise LaunchError(str(e)) from e
    return Prepared(launch.argv, env, cwd)


def _read(path: Path, last_bytes: int | None = None) -> bytes | None:
    try:
        with path.open("rb") as f:
            if last_bytes is not None:
                f.seek(max(0, f.seek(0, os.SEEK_END) - last_bytes))
            return f.read()
    except FileNotFoundError:
        return None


def _note(paths: AttemptPaths, text: str) -> None:
    """Append a worker note to the task's log, so `logs` shows why it ended."""
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    with paths.log.open("a") as f:
        f.write(f"\n[dagbroker] {text}\n")


def _cleanup(paths: AttemptPaths) -> None:
    shutil.rmtree(paths.work, ignore_errors=True)
    with contextlib.suppress(OSError):
        paths.work.parent.rmdir()  # the run's work dir, once its last attempt is gone


def _finish(
    handle: TaskHandle, ctx: ExecContext, paths: AttemptPaths, proc: ProcessResult,
    failure: str = "",
) -> Completion:
    """Blocking (runs in a thread): read result, error and log tail; build the Completion."""
    msg = handle.msg
    outcome, reason = classify(
        proc.returncode, timed_out=proc.timed_out, timeout_s=msg.spec.timeout_s,
        stop_outcome=handle.stop_outcome if proc.stopped else None, stop_reason=handle.stop_reason,
        oom_limit_mb=proc.oom_limit_mb,
    )
    result: Any = None
    if outcome is Outcome.SUCCEEDED:
        result, err = parse_result(_read(paths.result))
        if err or failure:
            outcome, reason = Outcome.FAILED, err or failure
    elif outcome is Outcome.FAILED and not proc.timed_out and proc.oom_limit_mb is None:
        reason = parse_error(_read(paths.error)) or reason
    if reason:
        _note(paths, f"{outcome.value}: {reason}")
    tail = tail_text(_read(paths.log, TAIL_READ_BYTES) or b"")
    _cleanup(paths)
    return Completion(
        run=msg.run, node=msg.node, attempt=msg.attempt, outcome=outcome, runner=ctx.runner_id,
        exit_code=proc.returncode, reason=reason, result=result, tail=tail,
        started_at_ms=proc.started_at_ms, finished_at_ms=proc.finished_at_ms,
    )


def _ended_early(
    handle: TaskHandle, ctx: ExecContext, paths: AttemptPaths, outcome: Outcome, reason: str,
    started_at_ms: int,
) -> Completion:
    """Blocking: a completion for an attempt whose process never ran."""
    msg = handle.msg
    _note(paths, f"{outcome.value}: {reason}")
    _cleanup(paths)
    tail = tail_text(_read(paths.log, TAIL_READ_BYTES) or b"")
    return Completion(
        run=msg.run, node=msg.node, attempt=msg.attempt, outcome=outcome, runner=ctx.runner_id,
        reason=reason, tail=tail, started_at_ms=started_at_ms, finished_at_ms=now_ms(),
    )


async def end_unrun(
    handle: TaskHandle, ctx: ExecContext, outcome: Outcome, reason: str, started_at_ms: int
) -> Completion:
    """The Completion of a task that will not run (e.g. its batch's init failed): the reason
    noted in its log, the log's tail read, its work dir removed."""
    paths = AttemptPaths.for_task(ctx.data_dir, handle.msg)
    return await asyncio.to_thread(
        _ended_early, handle, ctx, paths, outcome, reason, started_at_ms
    )


async def _run(
    handle: TaskHandle, ctx: ExecContext, build: LaunchBuilder, runner: ProcessRunner
) -> Completion:
    msg = handle.msg
    paths = AttemptPaths.for_task(ctx.data_dir, msg)
    started_at_ms = now_ms()
    failed = Outcome.FAILED
    try:
        prep = await _prepare(msg, ctx, build, paths)
    except LaunchError as e:
        return await asyncio.to_thread(
            _ended_early, handle, ctx, paths, failed, str(e), started_at_ms
        )
    if handle.stop_outcome is not None:
        return await asyncio.to_thread(
            _ended_early, handle, ctx, paths, handle.stop_outcome, handle.stop_reason, started_at_ms
        )
    logger.info("%s/%s#%d started: %s", msg.run, msg.node, msg.attempt, prep.argv[0],
                extra=task_extra(msg))
    try:
        async with LogShipper(ctx.redis, ctx.keys, msg, paths.log):  # live tail into Redis
            proc = await runner(handle, prep, paths, ctx)
    except OSError as e:
        reason = f"cannot start {prep.argv[0]!r}: {e}"
        return await asyncio.to_thread(
            _ended_early, handle, ctx, paths, failed, reason, started_at_ms
        )
    failure = await store_outputs(ctx, msg, prep.cwd, proc)  # spec.outputs, indexed
    return await asyncio.to_thread(_finish, handle, ctx, paths, proc, failure)


async def run_attempt(
    handle: TaskHandle, ctx: ExecContext, build: LaunchBuilder,
    runner: ProcessRunner = spawn_process,
) -> Completion:
    """Run one task to a Completion; never raises for the task's own failure."""
    msg = handle.msg
    started_at_ms = now_ms()
    try:
        completion = await _run(handle, ctx, build, runner)
    except Exception as e:
        logger.exception("%s/%s#%d: worker error", msg.run, msg.node, msg.attempt,
                         extra=task_extra(msg))
        completion = Completion(
            run=msg.run, node=msg.node, attempt=msg.attempt, outcome=Outcome.FAILED,
            runner=ctx.runner_id, reason=f"worker error: {type(e).__name__}: {e}",
            started_at_ms=started_at_ms, finished_at_ms=now_ms(),
        )
    elapsed_s = (completion.finished_at_ms - completion.started_at_ms) / 1000
    logger.info(
        "%s/%s#%d %s in %.2fs%s", msg.run, msg.node, msg.attempt, completion.outcome.value,
        elapsed_s, f": {completion.reason}" if completion.reason else "", extra=task_extra(msg),
    )
    return completion
