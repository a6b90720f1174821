"""Run one batch: mark it running (Scripts.start), run its `init` (batchinit.py), execute it,
report every outcome.

Entries whose task is stale (cancelled or re-dispatched meanwhile) are acknowledged with no
completion; tasks stopped before they started (shutdown) are reported at once without running.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from broker.wire import Completion, Outcome
from worker.batchinit import run_inits
from worker.conditions import run_with_conditions
from worker.executors import get_executor
from worker.reporter import ack_entries, report_completions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.engine.scripts import Scripts
    from worker.executors.base import ExecContext, Executor
    from worker.handle import TaskHandle

logger = logging.getLogger(__name__)


def simple_completion(h: TaskHandle, runner: str, outcome: Outcome, reason: str) -> Completion:
    now_ms = int(time.time() * 1000)
    m = h.msg
    return Completion(
        run=m.run, node=m.node, attempt=m.attempt, outcome=outcome, runner=runner,
        reason=reason, started_at_ms=now_ms, finished_at_ms=now_ms,
    )


async def _start(
    handles: Sequence[TaskHandle], ctx: ExecContext, scripts: Scripts
) -> list[TaskHandle]:
    """Scripts.start → the handles to run; the stale ones are acknowledged and dropped."""
    items = [(h.msg.run, h.msg.node, h.msg.attempt) for h in handles]
    flags = await scripts.start(ctx.runner_id, items)
    stale = [h for h, ok in zip(handles, flags, strict=True) if not ok]
    if stale:
        for h in stale:
            h.mark_reported()  # acked here: not an entry the broker took back (fencing)
        logger.info("skipping %d stale task(s): %s", len(stale),
                    ", ".join(f"{h.msg.run}/{h.msg.node}#{h.msg.attempt}" for h in stale[:5]))
        await ack_entries(ctx.redis, [h.key for h in stale])
    return [h for h, ok in zip(handles, flags, strict=True) if ok]


def _triage(
    handles: Sequence[TaskHandle], executor: Executor | None, name: str, runner: str
) -> tuple[list[tuple[TaskHandle, Completion]], list[TaskHandle]]:
    """→ (outcomes known without running, handles to run)."""
    known: list[tuple[TaskHandle, Completion]] = []
    todo: list[TaskHandle] = []
    for h in handles:
        if h.stop_outcome is not None:  # stopped before it started: read but never run
            known.append((h, simple_completion(h, runner, h.stop_outcome, h.stop_reason)))
        elif executor is None:
            reason = f"executor {name!r} is not available on runner {runner}"
            known.append((h, simple_completion(h, runner, Outcome.FAILED, reason)))
        else:
            todo.append(h)
    return known, todo


async def _execute(
    todo: list[TaskHandle], executor: Executor, ctx: ExecContext, scripts: Scripts
) -> list[tuple[TaskHandle, Completion]]:
    if executor.marks_running:
        todo = await _start(todo, ctx, scripts)
    if not todo:
        return []
    failed: list[tuple[TaskHandle, Completion]] = []  # their init failed
    try:
        failed, todo = await run_inits(executor.name, todo, ctx)  # once per batch
        completions = await run_with_conditions(executor, todo, ctx) if todo else []
    except Exception as e:
        logger.exception("executor %s failed on a batch of %d", executor.name, len(todo))
        reason = f"worker error: {type(e).__name__}: {e}"
        completions = [simple_completion(h, ctx.runner_id, Outcome.FAILED, reason) for h in todo]
    return failed + list(zip(todo, completions, strict=True))


async def run_batch(handles: Sequence[TaskHandle], ctx: ExecContext, scripts: Scripts) -> None:
    """One executor call for the batch; all its completions + acks in one MULTI."""
    name = handles[0].msg.spec.executor
    executor = get_executor(name)
    results, todo = _triage(handles, executor, name, ctx.runner_id)
    if todo and executor is not None:
        results += await _execute(todo, executor, ctx, scripts)
    for h, _ in results:
        h.mark_reported()  # acked below: not an entry the broker took back (fencing)
    await report_completions(ctx.redis, ctx.keys, [(h.key, c) for h, c in results])
