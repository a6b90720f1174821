"""Writing an expanded run into Redis: pipelined chunks, released all at once."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import TYPE_CHECKING

import msgspec

from broker.core.expand import Plan, PlannedTask
from broker.core.scoring import score
from broker.spec import task_spec_encoder

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from broker.engine.scripts import Scripts
    from broker.keys import Keys

logger = logging.getLogger(__name__)

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_run_id(now_ms: int | None = None) -> str:
    """`r` + base36 milliseconds + 5 random base36 chars: sortable, short, unique."""
    n = now_ms if now_ms is not None else int(time.time() * 1000)
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return "r" + out + "".join(secrets.choice(_B36) for _ in range(5))


def task_fields(
    t: PlannedTask, state: str, deps_left: int | None = None, wait_for: str | None = None
) -> dict[str, str | int]:
    """The task hash as written at expansion: state only, never the spec (shared per node).

    `wait_for` (event nodes): the key the task waits for once its parents are done (lib.lua).
    """
    f: dict[str, str | int] = {
        "state": state,
        "attempt": 1,
        "class": t.rclass,
        "priority": t.priority,
        "tpl": t.tpl,
        "batch": t.batch_key,
    }
    if t.parents:
        f["deps_left"] = len(t.parents) if deps_left is None else deps_left
        f["parents"] = ",".join(t.parents)
    if t.children:
        f["children"] = ",".join(t.children)
    if t.vars is not None:
        f["vars"] = json.dumps(t.vars, separators=(",", ":"))
    if t.trigger != "all_success":
        f["trigger"] = t.trigger
    if t.max_attempts > 1:
        f["max_attempts"] = t.max_attempts
        f["backoff_ms"] = t.backoff_ms
    if t.group is not None and t.member is not None:
        f["group"], f["member"] = t.group, t.member
    if t.reused_from:  # redo: already succeeded in that run
        f["reused_from"], f["result"] = t.reused_from, t.result
    if wait_for:
        f["wait_for"] = wait_for
    return f


def deps_left(plan: Plan) -> dict[str, int]:
    """Parents each task to run waits for: all of them, except those reused by a redo."""
    reused = {t.id for t in plan.tasks if t.reused_from}
    if not reused:
        return {t.id: len(t.parents) for t in plan.tasks}
    return {t.id: sum(p not in reused for p in t.parents) for t in plan.tasks if not t.reused_from}


async def write_run(
    redis: Redis,
    keys: Keys,
    scripts: Scripts,
    plan: Plan,
    *,
    run_id: str,
    meta: dict[str, str],
    chunk: int = 2000,
) -> int:
    """Write every task of `plan` under `run_id`, then release the roots. Returns roots released.

    Until `release_run` runs, the run is `expanding` and its roots sit in staging sets, so a
    broker that dies here leaves nothing dispatchable. Each chunk refreshes the run's score in
    `dagb:runs:expanding`; the janitor fails a run that made no progress for expand_timeout_s.
    """
    now = int(time.time() * 1000)
    left = deps_left(plan)
    roots = [t for t in plan.tasks if left.get(t.id) == 0]
    total = len(plan.tasks)
    n_reused = total - len(left)  # redo: tasks written already succeeded
    seq_end = int(await redis.incrby(keys.seq(), max(1, len(roots))))
    seq = seq_end - len(roots) + 1
    run_fields: dict[str, str | int] = {
        **meta,
        "state": "expanding",
        "priority": plan.priority,
        "params": json.dumps(plan.params, separators=(",", ":")),
        "created_at": now,
        "total": total,
        "remaining": total - n_reused,
        "n_pending": total - n_reused - len(roots),
        "n_ready": len(roots),
    }
    if n_reused:
        run_fields["n_succeeded"] = n_reused
    if plan.groups:
        run_fields["groups"] = msgspec.json.encode(plan.groups).decode()
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.run(run_id), mapping=run_fields)
    pipe.zadd(keys.runs(), {run_id: now})
    if meta.get("owner"):
        pipe.zadd(keys.runs_of(meta["owner"]), {run_id: now})
    pipe.zadd(keys.expanding(), {run_id: now})
    pipe.hset(
        keys.spec(run_id),
        mapping={tpl: task_spec_encoder.encode(s).decode() for tpl, s in plan.templates.items()},
    )
    pipe.sadd(keys.classes(), *plan.classes)
    await pipe.execute()
    for start in range(0, total, chunk):
        part = plan.tasks[start : start + chunk]
        pipe = redis.pipeline(transaction=False)
        staged: dict[str, dict[str, int]] = {}
        for t in part:
            n = left.get(t.id)
            is_root = n == 0
            state = "succeeded" if n is None else "ready" if is_root else "pending"
            wait_for = plan.templates[t.tpl].wait_for
            pipe.hset(keys.task(run_id, t.id), mapping=task_fields(t, state, n or 0, wait_for))
            if is_root:
                staged.setdefault(t.rclass, {})[f"{run_id}:{t.id}"] = score(t.priority, seq)
                seq += 1
        pipe.rpush(keys.tasks(run_id), *(t.id for t in part))
        pipe.zadd(keys.expanding(), {run_id: int(time.time() * 1000)})  # progress heartbeat
        for rclass, members in staged.items():
            pipe.zadd(keys.staging(run_id, rclass), members)
        await pipe.execute()
    classes = sorted({t.rclass for t in roots})
    released = await scripts.release_run(run_id, classes)
    if released < 0:  # cancelled while expanding: drop what was staged
        await redis.delete(*(keys.staging(run_id, c) for c in classes))
        logger.info("run %s was cancelled during expansion", run_id)
        return 0
    logger.info("run %s expanded: %d tasks, %d roots released", run_id, total, released)
    return released
