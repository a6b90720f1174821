"""ssh: run a task on `spec.host`, a host name from the runner's inventory (asyncssh).

A batch opens one connection per host and runs its tasks there over separate channels.
Per task: a fresh remote directory (`{host workdir}/{run}/{node}.{attempt}`, the command's
cwd) gets DAGB_INPUTS and the task's `inputs` by SFTP; the command runs argv-style, every
word shell-quoted, in its own session (ssh_remote.py), its output streamed into the attempt's
log; then DAGB_RESULT and the `outputs` come back by SFTP, and the remote directory is
removed. The local side of inputs and outputs is the task's workdir if it has one, else the
attempt's work directory.

A node's `init` runs first, once per host for the batch's tasks there (ssh_init.py).

Cancel and timeout kill the remote process group. A connection that drops mid-task makes the
attempt LOST (the broker retries it) only after the old process group was killed over a new
connection; if that fails, the reason says the remote task may still be running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from broker.wire import Completion, Outcome
from worker.executors.attempt import LaunchError, render_command
from worker.executors.base import register_executor
from worker.executors.inputs import fetch_inputs
from worker.executors.outcome import RESULT_MAX_BYTES, parse_result, tail_text
from worker.executors.paths import AttemptPaths
from worker.executors.ssh_files import (
    TransferError,
    fetch_outputs,
    read_small,
    upload_inputs,
    write_file,
)
from worker.executors.ssh_init import remove_init_dirs, run_host_inits
from worker.executors.ssh_inventory import Inventory, load_inventory
from worker.executors.ssh_remote import (
    INPUTS_FILE,
    PGID_FILE,
    RESULT_FILE,
    RemoteCommandError,
    remote_dir,
    run_command,
)
from worker.executors.ssh_run import RemoteExit, run_remote
from worker.executors.ssh_session import CONNECT_ERRORS, HostSession
from worker.logs import task_extra
from worker.logship import LogShippers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.wire import TaskMessage
    from worker.config import WorkerSettings
    from worker.executors.base import ExecContext
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

TAIL_READ_BYTES = 16 * 1024


class TaskError(Exception):
    """The task failed before or around its command (its message is the reason)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _read_tail(log: Path) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - TAIL_READ_BYTES))
            return tail_text(f.read())
    except FileNotFoundError:
        return ""


def _note(log: Path, text: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n[dagbroker] {text}\n")


def _finish_log(log: Path, note: str, work: Path) -> str:
    """Blocking: note why it ended, remove an empty local work dir, → the log's tail."""
    if note:
        _note(log, note)
    with contextlib.suppress(OSError):
        work.rmdir()
        work.parent.rmdir()
    return _read_tail(log)


def build_command(msg: TaskMessage) -> tuple[list[str], dict[str, str], Path | None]:
    """→ (argv, the task's own env, local workdir or None), placeholders rendered."""
    try:
        argv, env, text = render_command(msg, "ssh")
    except LaunchError as e:
        raise TaskError(str(e)) from e
    workdir = Path(text) if text else None
    return argv, env, workdir


def classify(ex: RemoteExit, timeout_s: float | None, handle: TaskHandle,
             host: str) -> tuple[Outcome, str, int | None]:
    if ex.lost:
        reason = f"ssh: connection to {host} lost mid-task ({ex.lost})"
        if ex.orphaned:
            reason += f"; the remote task could not be killed and may still run: {ex.orphaned}"
        return Outcome.LOST, reason, None
    left = f" (the remote task could not be killed and may still run: {ex.orphaned})" \
        if ex.orphaned else ""
    if ex.stopped:
        return handle.stop_outcome or Outcome.CANCELLED, handle.stop_reason + left, None
    if ex.timed_out:
        return Outcome.FAILED, f"timeout after {timeout_s}s{left}", None
    if ex.signal:
        return Outcome.FAILED, f"killed by signal SIG{ex.signal}", None
    if ex.status == 0:
        return Outcome.SUCCEEDED, "", 0
    return Outcome.FAILED, f"exit code {ex.status}", ex.status


class _Task:
    """One task on one host: stage in, run, stage out."""

    def __init__(self, handle: TaskHandle, session: HostSession, ctx: ExecContext) -> None:
        self.handle = handle
        self.msg = handle.msg
        self.session = session
        self.ctx = ctx
        self.paths = AttemptPaths.for_task(ctx.data_dir, handle.msg)
        self.rdir = ""

    def completion(self, outcome: Outcome, reason: str, started_at_ms: int, **kw: Any
                   ) -> Completion:
        m = self.msg
        return Completion(
            run=m.run, node=m.node, attempt=m.attempt, outcome=outcome,
            runner=self.ctx.runner_id, reason=reason, started_at_ms=started_at_ms,
            finished_at_ms=now_ms(), **kw,
        )

    async def run(self) -> Completion:
        started_at_ms = now_ms()
        try:
            argv, env, workdir = build_command(self.msg)
            local = workdir or self.paths.work
            async with self.session.channels:
                ex = await self._run(argv, env, local)
                outcome, reason, code = classify(
                    ex, self.msg.spec.timeout_s, self.handle, self.session.name)
                result = None
                if outcome is Outcome.SUCCEEDED:
                    result, reason = await self._stage_out(local)
                    outcome = Outcome.FAILED if reason else outcome
                if not ex.orphaned:  # (an orphan may still use its directory)
                    await self._cleanup()
        except (TaskError, TransferError, RemoteCommandError) as e:
            outcome, reason, code, result = Outcome.FAILED, str(e), None, None
        except CONNECT_ERRORS as e:  # the connection failed outside the command: nothing ran
            outcome, reason, code, result = (
                Outcome.FAILED, f"ssh: {self.session.name}: {type(e).__name__}: {e}", None, None)
        note = f"{outcome.value}: {reason}" if reason else ""
        tail = await asyncio.to_thread(_finish_log, self.paths.log, note, self.paths.work)
        return self.completion(outcome, reason, started_at_ms, exit_code=code, result=result,
                               tail=tail)

    async def _run(self, argv: list[str], env: dict[str, str], local: Path) -> RemoteExit:
        msg, sftp = self.msg, await self.session.sftp()
        base = remote_dir(self.session.host.workdir, msg.run, msg.node, msg.attempt)
        await sftp.makedirs(base, exist_ok=True)
        self.rdir = rdir = await sftp.realpath(base)
        inputs = await fetch_inputs(self.ctx.redis, self.ctx.keys, msg)
        await write_file(sftp, f"{rdir}/{INPUTS_FILE}", msgspec.json.encode(inputs))
        await upload_inputs(sftp, local, rdir, msg.spec.inputs)
        env = {**env, "DAGB_RUN": msg.run, "DAGB_NODE": msg.node, "DAGB_TASK": msg.tpl,
               "DAGB_ATTEMPT": str(msg.attempt), "DAGB_RESULT": f"{rdir}/{RESULT_FILE}",
               "DAGB_INPUTS": f"{rdir}/{INPUTS_FILE}"}
        command = run_command(argv, env, rdir, f"{rdir}/{PGID_FILE}")
        if self.handle.stop_outcome is not None:
            return RemoteExit(stopped=True)
        logger.info("%s/%s#%d started on %s: %s", msg.run, msg.node, msg.attempt,
                    self.session.name, argv[0], extra=task_extra(msg))
        return await run_remote(
            self.session, command, log_path=self.paths.log, pgid_file=f"{rdir}/{PGID_FILE}",
            timeout_s=msg.spec.timeout_s, stop=self.handle.stop_event(),
            grace_s=self.ctx.kill_grace_s,
        )

    async def _stage_out(self, local: Path) -> tuple[Any, str]:
        """→ (result, error): DAGB_RESULT and the declared outputs."""
        sftp = await self.session.sftp()
        result, err = parse_result(
            await read_small(sftp, f"{self.rdir}/{RESULT_FILE}", RESULT_MAX_BYTES))
        if err:
            return None, err
        try:
            await fetch_outputs(sftp, self.rdir, self.msg.spec.outputs, local)
        except TransferError as e:
            return None, str(e)
        return result, ""

    async def _cleanup(self) -> None:
        if self.rdir and not self.session.host.keep_workdir:
            with contextlib.suppress(*CONNECT_ERRORS):
                await (await self.session.sftp()).rmtree(self.rdir, ignore_errors=True)


class SshExecutor:
    name = "ssh"
    marks_running = True

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.inventory: Inventory = inventory or {}

    def configure(self, inventory: Inventory) -> None:
        self.inventory = dict(inventory)

    async def run_batch(self, tasks: Sequence[TaskHandle], ctx: ExecContext) -> list[Completion]:
        by_host: dict[str, list[TaskHandle]] = {}
        for h in tasks:
            by_host.setdefault(h.msg.spec.host or "", []).append(h)
        done: dict[tuple[str, str], Completion] = {}
        logs = [(h.msg, AttemptPaths.for_task(ctx.data_dir, h.msg).log) for h in tasks]
        async with LogShippers(ctx.redis, ctx.keys, logs):  # live: the channels write the logs
            for results in await asyncio.gather(
                *(self._run_host(name, handles, ctx) for name, handles in by_host.items())
            ):
                done.update(results)
        return [done[h.key] for h in tasks]

    async def _run_host(
        self, name: str, handles: list[TaskHandle], ctx: ExecContext
    ) -> dict[tuple[str, str], Completion]:
        host = self.inventory.get(name)
        if host is None:
            why = f"unknown ssh host {name!r}: not in runner {ctx.runner_id}'s inventory"
            return {h.key: _failed(h, ctx, why) for h in handles}
        session = HostSession(name, host)
        try:
            await session.open()
        except CONNECT_ERRORS as e:
            why = f"ssh: cannot connect to {name} ({host.host}:{host.port}): {e}"
            return {h.key: _failed(h, ctx, why) for h in handles}
        try:
            inits = await run_host_inits(session, handles, ctx)  # once per host per batch
            completions = await asyncio.gather(*(_Task(h, session, ctx).run()
                                                 for h in inits.todo))
            await remove_init_dirs(session, inits.dirs)
        finally:
            with contextlib.suppress(*CONNECT_ERRORS):
                await session.close()
        logger.debug("ssh batch on %s: %d task(s), %d connection(s)", name, len(handles),
                     session.connections)
        return {**inits.ended, **{h.key: c for h, c in zip(inits.todo, completions,
                                                          strict=True)}}


def _failed(h: TaskHandle, ctx: ExecContext, reason: str) -> Completion:
    m, t = h.msg, now_ms()
    return Completion(run=m.run, node=m.node, attempt=m.attempt, outcome=Outcome.FAILED,
                      runner=ctx.runner_id, reason=reason, started_at_ms=t, finished_at_ms=t)


def configure_ssh(settings: WorkerSettings) -> None:
    """Load the worker's inventory (InventoryError if it is unreadable or invalid)."""
    EXECUTOR.configure(load_inventory(settings.ssh_inventory) if settings.ssh_inventory else {})


EXECUTOR = SshExecutor()
register_executor(EXECUTOR)
