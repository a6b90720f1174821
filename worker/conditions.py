"""Pre- and postconditions of a task (`pre`, `post`), checked by the worker around its run.

pre   checked once the task is marked running, before the executor starts it. While one is
      false the worker waits `pre_backoff × 2^k` seconds (k = 0, 1, …; capped at 1 h) and
      checks again, `pre_retries` times at most, then fails the attempt with
      `precondition failed: <condition> (after N checks)`. The entry stays held, so the
      heartbeat keeps renewing its lease; a cancel order or a shutdown ends the wait at once.
post  checked once after the task succeeded; a false one fails the attempt with
      `postcondition failed: <condition>`.

A condition holds when: `file` exists (a relative path is taken from the task's workdir);
`artifact` is a name some task of the run stored (a field `{task}/{name}` of
`dagb:artifacts:{run}`; a glob matches names); `command` exits 0 (run like a shell task: same
env and workdir, its own process group, the task's timeout, output appended to the task's
log); `result` — an upstream value `node` or `node.key.key`, read from the parents' results —
compares true with `value` under `op`. Placeholders in file, artifact and command are
rendered like the task's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import operator
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from broker.core.template import render
from broker.wire import Completion, Outcome
from worker.executors.attempt import task_env, task_values
from worker.executors.inputs import fetch_inputs
from worker.executors.outcome import TAIL_CHARS, tail_text
from worker.executors.paths import AttemptPaths
from worker.executors.process import run_process
from worker.logs import task_extra

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from broker.spec import Condition
    from worker.executors.base import ExecContext, Executor
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)

PRE_BACKOFF_CAP_S = 3600.0
SHELL = "/bin/sh"
TAIL_READ_BYTES = 16 * 1024
_OPS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


# -- pure ----------------------------------------------------------------------------------


def _shown(text: str, values: Mapping[str, Any] | None, quote: bool = False) -> str:
    if values is None:
        return text
    try:
        return render(text, values, shell_quote=quote)
    except KeyError:
        return text


def describe(cond: Condition, values: Mapping[str, Any] | None = None) -> str:
    """The condition as text (placeholders rendered with `values`): its description, else
    e.g. `file data.csv exists`."""
    if cond.description:
        return cond.description
    if cond.file is not None:
        return f"file {_shown(cond.file, values)} exists"
    if cond.artifact is not None:
        return f"artifact {_shown(cond.artifact, values)} exists"
    if isinstance(cond.command, str):
        return f"command `{_shown(cond.command, values, quote=True)}` exits 0"
    if cond.command is not None:
        return f"command `{shlex.join(_shown(a, values) for a in cond.command)}` exits 0"
    return f"result {cond.result} {cond.op} {json.dumps(cond.value)}"


def compare(left: Any, op: str, right: Any) -> bool:
    """`left op right`; values that cannot be ordered (a string and a number) compare false."""
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return False


def _walk(value: Any, path: Sequence[str]) -> tuple[bool, Any]:
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return False, None
    return True, value


def _parent_value(name: str, inputs: Mapping[str, Any], member: str) -> tuple[bool, Any]:
    for cand in (name, member + name) if member else (name,):
        if cand in inputs:
            return True, inputs[cand]
        copies = [v for k, v in inputs.items() if k.startswith(cand + "[")]
        if copies:  # a matrix node or an ensemble: the results of all its copies
            return True, copies
    return False, None


def upstream_value(ref: str, inputs: Mapping[str, Any], task: str) -> tuple[bool, Any]:
    """(found, value) of `node` or `node.key.key` among the parents' results.

    `node` is a parent task id, a sub-node id within the task's own ensemble member (`prep`
    for `ens[3].prep`), or a node whose copies are parents (the list of their results);
    keys index objects, and lists by position.
    """
    parts = ref.split(".")
    member = task[: task.rfind("].") + 2] if "]." in task else ""
    for n in range(len(parts), 0, -1):
        found, value = _parent_value(".".join(parts[:n]), inputs, member)
        if found:
            return _walk(value, parts[n:])
    return False, None


def _artifact_match(field_name: str, name: str) -> bool:
    stored = field_name.partition("/")[2]
    return fnmatch.fnmatchcase(stored, name) if any(c in name for c in "*?[") else stored == name


# -- checks --------------------------------------------------------------------------------


@dataclass
class Probe:
    """What the conditions of one attempt are checked against."""

    handle: TaskHandle
    ctx: ExecContext
    values: dict[str, Any]
    paths: AttemptPaths
    _inputs: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def for_task(cls, handle: TaskHandle, ctx: ExecContext) -> Probe:
        msg = handle.msg
        return cls(handle, ctx, task_values(msg), AttemptPaths.for_task(ctx.data_dir, msg))

    @property
    def cwd(self) -> str | None:
        workdir = self.handle.msg.spec.workdir
        return render(workdir, self.values) if workdir else None

    async def inputs(self) -> dict[str, Any]:
        """The parents' results (read once: they are final before the task is dispatched)."""
        if self._inputs is None:
            self._inputs = await fetch_inputs(self.ctx.redis, self.ctx.keys, self.handle.msg)
        return self._inputs


async def _file_exists(cond_file: str, probe: Probe) -> bool:
    path = Path(render(cond_file, probe.values))
    cwd = probe.cwd
    if cwd and not path.is_absolute():
        path = Path(cwd) / path
    return await asyncio.to_thread(path.exists)


async def _artifact_exists(name_text: str, probe: Probe) -> bool:
    name = render(name_text, probe.values)
    key = probe.ctx.keys.artifacts(probe.handle.msg.run)
    async for field_name, _ in probe.ctx.redis.hscan_iter(key, match="*/*"):
        if _artifact_match(field_name, name):
            return True
    return False


async def _command_exits_0(command: str | list[str], probe: Probe) -> tuple[bool, str]:
    msg, ctx = probe.handle.msg, probe.ctx
    if isinstance(command, str):
        argv = [SHELL, "-c", render(command, probe.values, shell_quote=True)]
    else:
        argv = [render(a, probe.values) for a in command]
    env = task_env(ctx, msg, probe.values, probe.paths, {})
    for name in ("DAGB_RESULT", "DAGB_INPUTS"):  # the task's own files: not for a condition
        env.pop(name, None)
    try:
        proc = await run_process(
            argv, env=env, cwd=probe.cwd, log_path=probe.paths.log, timeout_s=msg.spec.timeout_s,
            stop=probe.handle.stop_event(), kill_grace_s=ctx.kill_grace_s,
        )
    except OSError as e:
        return False, f"cannot start: {e}"
    if proc.timed_out:
        return False, f"timed out after {msg.spec.timeout_s}s"
    return proc.returncode == 0, "" if proc.returncode == 0 else f"exit code {proc.returncode}"


async def _holds(cond: Condition, probe: Probe) -> tuple[bool, str]:
    """(holds, detail): the detail says what was seen when it is useful."""
    try:
        if cond.file is not None:
            return await _file_exists(cond.file, probe), ""
        if cond.artifact is not None:
            return await _artifact_exists(cond.artifact, probe), ""
        if cond.command is not None:
            return await _command_exits_0(cond.command, probe)
    except KeyError as e:
        return False, f"unknown placeholder {{{{ {e.args[0]} }}}}"
    found, value = upstream_value(cond.result or "", await probe.inputs(), probe.handle.msg.node)
    if not found:
        return False, "no such upstream value"
    return compare(value, cond.op, cond.value), f"got {json.dumps(value)}"


async def first_false(conditions: Sequence[Condition], probe: Probe) -> str | None:
    """The text of the first condition that does not hold, or None when all hold."""
    for cond in conditions:
        ok, detail = await _holds(cond, probe)
        if not ok:
            return describe(cond, probe.values) + (f", {detail}" if detail else "")
    return None


def _note(path: Path, text: str) -> None:
    """Blocking: append a worker note to the task's log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(f"[dagbroker] {text}\n")


async def _stopped_within(handle: TaskHandle, delay_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(handle.stop_event().wait(), delay_s)
    return handle.stop_outcome is not None


async def wait_preconditions(probe: Probe) -> tuple[Outcome, str] | None:
    """None once every precondition holds; else (outcome, reason) to end the attempt with."""
    handle, spec = probe.handle, probe.handle.msg.spec
    checks = spec.pre_retries + 1
    false: str | None = None
    for k in range(checks):
        false = await first_false(spec.pre, probe)
        if false is None:
            return None
        if handle.stop_outcome is not None:
            return handle.stop_outcome, handle.stop_reason
        if k + 1 < checks:
            delay_s = min(spec.pre_backoff_s * 2.0 ** min(k, 40), PRE_BACKOFF_CAP_S)
            await asyncio.to_thread(
                _note, probe.paths.log,
                f"precondition false: {false}; check {k + 2} of {checks} in {delay_s:g}s",
            )
            if await _stopped_within(handle, delay_s):
                return handle.stop_outcome or Outcome.CANCELLED, handle.stop_reason
    plural = "s" if checks != 1 else ""
    return Outcome.FAILED, f"precondition failed: {false} (after {checks} check{plural})"


# -- around the executor --------------------------------------------------------------------


def _read_tail(path: Path, text: str) -> str:
    """Blocking: note `text` in the log, then read the log's tail."""
    _note(path, text)
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, 2) - TAIL_READ_BYTES))
        return tail_text(f.read())


async def _ended(probe: Probe, outcome: Outcome, reason: str, started_at_ms: int) -> Completion:
    msg = probe.handle.msg
    tail = await asyncio.to_thread(_read_tail, probe.paths.log, f"{outcome.value}: {reason}")
    return Completion(
        run=msg.run, node=msg.node, attempt=msg.attempt, outcome=outcome,
        runner=probe.ctx.runner_id, reason=reason, tail=tail,
        started_at_ms=started_at_ms, finished_at_ms=int(time.time() * 1000),
    )


async def _run_guarded(executor: Executor, handle: TaskHandle, ctx: ExecContext) -> Completion:
    msg, probe = handle.msg, Probe.for_task(handle, ctx)
    started_at_ms = int(time.time() * 1000)
    if msg.spec.pre:
        ended = await wait_preconditions(probe)
        if ended is not None:
            logger.info("%s/%s#%d %s: %s", msg.run, msg.node, msg.attempt, ended[0].value,
                        ended[1], extra=task_extra(msg))
            return await _ended(probe, *ended, started_at_ms)
    [completion] = await executor.run_batch([handle], ctx)
    if msg.spec.post and completion.outcome is Outcome.SUCCEEDED:
        false = await first_false(msg.spec.post, probe)
        if false is not None:
            reason = f"postcondition failed: {false}"
            logger.info("%s/%s#%d failed: %s", msg.run, msg.node, msg.attempt, reason,
                        extra=task_extra(msg))
            await asyncio.to_thread(_note, probe.paths.log, f"failed: {reason}")
            tail = (completion.tail + f"\n[dagbroker] failed: {reason}\n")[-TAIL_CHARS:]
            completion = msgspec.structs.replace(
                completion, outcome=Outcome.FAILED, reason=reason, result=None, tail=tail
            )
    return completion


def has_conditions(handle: TaskHandle) -> bool:
    return bool(handle.msg.spec.pre or handle.msg.spec.post)


def _worker_error(handle: TaskHandle, ctx: ExecContext, e: Exception) -> Completion:
    msg, now_ms = handle.msg, int(time.time() * 1000)
    return Completion(
        run=msg.run, node=msg.node, attempt=msg.attempt, outcome=Outcome.FAILED,
        runner=ctx.runner_id, reason=f"worker error: {type(e).__name__}: {e}",
        started_at_ms=now_ms, finished_at_ms=now_ms,
    )


async def _one(executor: Executor, handle: TaskHandle, ctx: ExecContext) -> list[Completion]:
    return [await _run_guarded(executor, handle, ctx)]


async def run_with_conditions(
    executor: Executor, handles: Sequence[TaskHandle], ctx: ExecContext
) -> list[Completion]:
    """executor.run_batch, with each task that has conditions run on its own between its
    checks. One Completion per handle, in order; a worker error fails only its own tasks."""
    if not any(has_conditions(h) for h in handles):
        return await executor.run_batch(handles, ctx)
    plain = [h for h in handles if not has_conditions(h)]
    parts = [(plain, executor.run_batch(plain, ctx))] if plain else []
    parts += [([h], _one(executor, h, ctx)) for h in handles if has_conditions(h)]
    outs = await asyncio.gather(*(coro for _, coro in parts), return_exceptions=True)
    done: dict[tuple[str, str], Completion] = {}
    for (group, _), out in zip(parts, outs, strict=True):
        if isinstance(out, BaseException):
            if not isinstance(out, Exception):
                raise out
            logger.error("executor %s failed on %d task(s)", executor.name, len(group),
                         exc_info=out)
            out = [_worker_error(h, ctx, out) for h in group]
        done.update(zip((h.key for h in group), out, strict=True))
    return [done[h.key] for h in handles]
