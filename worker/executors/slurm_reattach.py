"""Re-attach: a restarted worker follows the SLURM jobs its previous process submitted.

A SLURM job outlives the worker that submitted it. When a worker comes back under the same
runner id, its consumer still holds (pending, unacknowledged) the entries of the tasks it
was running. `find_reattachable` returns those whose task is still `running` on this runner,
at the same attempt, with a `slurm_job` recorded for that attempt; `run_reattached` polls
their jobs (no second submission, no Scripts.start: they are already running) and reports
them like any batch. Entries that do not qualify are left alone (the reaper or the exit-time
hand-back deals with them).

These are the slurm executor's side of the optional `Reattachable` protocol
(worker/executors/base.py): SlurmExecutor.find_reattachable / reattach wrap them, and
Worker.start calls them for every registered executor that has them:

    for ex in reattachable_executors():
        handles = await ex.find_reattachable(redis, keys, streams, runner_id, held=inflight)
        ...  # held like read tasks; ex.reattach(handles, ctx), reported, then discarded

`run_reattached` does the same for one executor (the slurm one by default).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from broker.keys import WORKER_GROUP
from broker.wire import TaskState
from worker.executors.base import Reattachable, get_executor
from worker.handle import TaskHandle
from worker.reporter import report_completions
from worker.streams import decode_entries, flatten_reply

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis.asyncio import Redis

    from broker.keys import Keys
    from broker.wire import TaskMessage
    from worker.executors.base import ExecContext
    from worker.inflight import InFlight

logger = logging.getLogger(__name__)

READ_COUNT = 1000
SLURM = "slurm"  # SlurmExecutor.name (slurm.py imports this module, not the other way)


async def _own_pending(redis: Redis, streams: Iterable[str], runner_id: str) -> list[TaskMessage]:
    """The entries pending on this consumer, with their fields (XREADGROUP from id 0)."""
    out: list[TaskMessage] = []
    for stream in streams:
        after = "0"
        while True:
            reply = await redis.xreadgroup(
                WORKER_GROUP, runner_id, {stream: after}, count=READ_COUNT
            )
            entries = flatten_reply(reply)
            if not entries:
                break
            after = entries[-1][1]
            messages, _ = decode_entries([e for e in entries if e[2]])  # deleted: no fields
            out += messages
    return out


def _qualifies(msg: TaskMessage, row: list[Any], runner_id: str) -> bool:
    state, attempt, runner, job, job_attempt = row
    return (
        state == TaskState.RUNNING and attempt == str(msg.attempt) and runner == runner_id
        and bool(job) and job_attempt == str(msg.attempt)
    )


async def find_reattachable(
    redis: Redis, keys: Keys, streams: Iterable[str], runner_id: str,
    held: InFlight | None = None, executor: str = SLURM,
) -> list[TaskHandle]:
    """Handles for this runner's pending slurm entries whose job can be followed again
    (entries already in `held` are skipped, so calling it twice is harmless)."""
    messages = [
        m for m in await _own_pending(redis, streams, runner_id)
        if m.spec.executor == executor
        and not (held is not None and held.find(m.run, m.node))
    ]
    if not messages:
        return []
    pipe = redis.pipeline(transaction=False)
    for m in messages:
        pipe.hmget(keys.task(m.run, m.node),
                   ["state", "attempt", "runner", "slurm_job", "slurm_attempt"])
    rows = await pipe.execute()
    handles = [
        TaskHandle(m) for m, row in zip(messages, rows, strict=True)
        if _qualifies(m, row, runner_id)
    ]
    if handles:
        logger.info("re-attaching to %d SLURM job(s) of runner %s", len(handles), runner_id)
    return handles


async def run_reattached(
    handles: list[TaskHandle], ctx: ExecContext, executor: Reattachable | None = None
) -> bool:
    """Follow the tasks to their end (`executor.reattach`; by default the registered slurm
    executor) and report them. → False if Redis stayed unreachable."""
    if not handles:
        return True
    ex = executor if executor is not None else get_executor(SLURM)
    if not isinstance(ex, Reattachable):
        raise RuntimeError(f"executor {SLURM!r} is not registered on this runner")
    completions = await ex.reattach(handles, ctx)
    return await report_completions(
        ctx.redis, ctx.keys, [(h.key, c) for h, c in zip(handles, completions, strict=True)]
    )
