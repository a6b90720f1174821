"""ssh: a batch's `init`, run once per host over that host's session, before its tasks there.

batchinit.py renders it (run parameters only), groups the tasks by it and words the
reasons; here it runs the way a task does (ssh_remote.run_command: argv-style, every word
shell-quoted, the node's env exported, in its own session under setsid so that a stop, a
timeout or a dropped connection kills its process group), with the node's timeout, in a
per-batch remote directory `{host workdir}/.dagb-init/{runner}-{ms}-{n}`, removed once the
host's tasks are done. (For ssh the node's `workdir` is the tasks' *local* directory, so it
is not the init's.) Its output goes to a local init log, `{data_dir}/logs/_init/…`, and is
appended to each of its tasks' logs (the batch's LogShippers ship it live).

If it fails, its tasks on that host fail without running (`init failed: exit N`, …); if the
connection drops while it runs, they are LOST (retried), as a task would be, once its
process group was killed over a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.wire import Outcome
from worker.batchinit import (
    FAILED_PREFIX,
    all_stopped,
    append_logs,
    copy_text,
    group_by_init,
    init_log_path,
    reason_for,
)
from worker.executors.attempt import end_unrun
from worker.executors.paths import AttemptPaths, safe_part
from worker.executors.process import now_ms
from worker.executors.ssh_remote import PGID_FILE, RemoteCommandError, run_command
from worker.executors.ssh_run import RemoteExit, run_remote
from worker.executors.ssh_session import CONNECT_ERRORS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from broker.wire import Completion
    from worker.batchinit import InitCommand
    from worker.executors.base import ExecContext
    from worker.executors.ssh_session import HostSession
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

INIT_DIR = ".dagb-init"
_seq = itertools.count(1)


@dataclass
class HostInits:
    """What a host's inits left: tasks ended unrun, tasks to run, remote dirs to remove."""

    ended: dict[tuple[str, str], Completion] = field(default_factory=dict)
    todo: list[TaskHandle] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


@dataclass
class _Verdict:
    """How one init run ended for its tasks: outcome None means run them."""

    outcome: Outcome | None = None
    reason: str = ""
    end: str = ""  # the closing line of its copy in the task logs
    rdir: str = ""  # its remote directory ('' if none was made, or it must be left alone)


def _judge(ex: RemoteExit, cmd: InitCommand, host: str, secs: float) -> _Verdict:
    """Pure: a RemoteExit of the init → what happens to its tasks."""
    left = f"; it could not be killed and may still run: {ex.orphaned}" if ex.orphaned else ""
    if ex.lost:
        why = f"ssh: connection to {host} lost during init ({ex.lost}){left}"
        return _Verdict(Outcome.LOST, why, f"lost: {ex.lost}")
    if ex.stopped:  # every task of it was stopped: each reports its own stop
        return _Verdict(Outcome.CANCELLED, left.lstrip("; "), "stopped")
    reason = reason_for(ex.status, signal=f"SIG{ex.signal}" if ex.signal else "",
                        timed_out=ex.timed_out, timeout_s=cmd.timeout_s)
    end = f"timed out after {cmd.timeout_s}s" if ex.timed_out \
        else f"exit {ex.status if ex.status is not None else ex.signal} ({secs:.2f} s)"
    return _Verdict(Outcome.FAILED if reason else None,
                    FAILED_PREFIX + reason + left if reason else "", end)


async def _run_remote_init(
    session: HostSession, cmd: InitCommand, log: Path, stop: asyncio.Event,
    ctx: ExecContext, verdict: _Verdict,
) -> RemoteExit:
    sftp = await session.sftp()
    stamp = f"{safe_part(ctx.runner_id)}-{now_ms()}-{next(_seq)}"
    base = f"{session.host.workdir.rstrip('/') or '.'}/{INIT_DIR}/{stamp}"
    await sftp.makedirs(base, exist_ok=True)
    verdict.rdir = rdir = await sftp.realpath(base)
    command = run_command(cmd.argv, dict(cmd.env), rdir, f"{rdir}/{PGID_FILE}")
    async with session.channels:
        return await run_remote(
            session, command, log_path=log, pgid_file=f"{rdir}/{PGID_FILE}",
            timeout_s=cmd.timeout_s, stop=stop, grace_s=ctx.kill_grace_s,
        )


async def _run_init(
    session: HostSession, cmd: InitCommand, handles: Sequence[TaskHandle], ctx: ExecContext
) -> _Verdict:
    """Run one init on the host for these tasks; its copy appended to their logs."""
    log = init_log_path(ctx.data_dir)
    stop = asyncio.Event()  # a stop of every task (cancel, shutdown) ends the init too
    watcher = asyncio.create_task(all_stopped(handles, stop))
    started_mono = asyncio.get_running_loop().time()
    verdict = _Verdict()
    try:
        ex = await _run_remote_init(session, cmd, log, stop, ctx, verdict)
        secs = asyncio.get_running_loop().time() - started_mono
        rdir, verdict = verdict.rdir, _judge(ex, cmd, session.name, secs)
        verdict.rdir = "" if ex.orphaned else rdir  # (an orphan may still use it)
    except RemoteCommandError as e:
        verdict.outcome, verdict.reason, verdict.end = Outcome.FAILED, FAILED_PREFIX + str(e), \
            f"failed: {e}"
    except CONNECT_ERRORS as e:  # outside the command: it did not run
        why = f"ssh: {session.name}: {type(e).__name__}: {e}"
        verdict.outcome, verdict.reason, verdict.end = Outcome.FAILED, FAILED_PREFIX + why, \
            f"failed: {why}"
    finally:
        watcher.cancel()
    logger.info("init on %s for %d task(s) %s: %s", session.name, len(handles),
                "done" if verdict.outcome is None else verdict.outcome.value,
                verdict.reason or cmd.shown())
    text = await asyncio.to_thread(copy_text, log, cmd, len(handles), verdict.end)
    logs = [AttemptPaths.for_task(ctx.data_dir, h.msg).log for h in handles]
    await asyncio.to_thread(append_logs, logs, text)
    return verdict


async def _end(h: TaskHandle, ctx: ExecContext, v: _Verdict, started_at_ms: int) -> Completion:
    if v.outcome is Outcome.CANCELLED:  # stopped: the task's own stop outcome and reason
        reason = h.stop_reason + (f" ({v.reason})" if v.reason else "")
        return await end_unrun(h, ctx, h.stop_outcome or Outcome.CANCELLED, reason,
                               started_at_ms)
    assert v.outcome is not None
    return await end_unrun(h, ctx, v.outcome, v.reason, started_at_ms)


async def run_host_inits(
    session: HostSession, handles: Sequence[TaskHandle], ctx: ExecContext
) -> HostInits:
    """Run the inits of a host's tasks (one per distinct rendered init) → what is left."""
    if not any(h.msg.spec.init for h in handles):
        return HostInits(todo=list(handles))
    started_at_ms = now_ms()
    groups, free, bad = group_by_init(handles)
    out = HostInits(todo=list(free))
    for h, why in bad:
        out.ended[h.key] = await end_unrun(h, ctx, Outcome.FAILED, FAILED_PREFIX + why,
                                           started_at_ms)
    cmds = list(groups)
    verdicts = await asyncio.gather(*(_run_init(session, c, groups[c], ctx) for c in cmds))
    for cmd, v in zip(cmds, verdicts, strict=True):
        if v.rdir:
            out.dirs.append(v.rdir)
        if v.outcome is None:
            out.todo += groups[cmd]
            continue
        for h in groups[cmd]:
            out.ended[h.key] = await _end(h, ctx, v, started_at_ms)
    return out


async def remove_init_dirs(session: HostSession, dirs: Sequence[str]) -> None:
    """Once the host's tasks are done: their inits' remote directories go (unless kept)."""
    if not dirs or session.host.keep_workdir:
        return
    with contextlib.suppress(*CONNECT_ERRORS):
        sftp = await session.sftp()
        for rdir in dirs:
            await sftp.rmtree(rdir, ignore_errors=True)
