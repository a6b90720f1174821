"""Redo a finished run from a node: a new run of the same workflow revision and parameters.

The named node (every matrix / ensemble copy of it) and all its descendants run again; every
other task is written already `succeeded`, with the result it had in the old run, so its
dependents read that result instead of recomputing it. A task the old run did not finish
successfully has no result to reuse: it runs again too, with its descendants. The runs are
linked both ways: the new run's `redo_of`, the old run's `redone_by` (a list).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from broker.core.ensemble import member_id
from broker.core.expand import Plan, expand
from broker.errors import Conflict, NotFound

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis.asyncio import Redis

    from broker.engine.engine import Engine
    from broker.keys import Keys
    from broker.spec import Workflow

logger = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")
READ_CHUNK = 2000


async def load_finished_run(redis: Redis, keys: Keys, run: str) -> dict[str, str]:
    """The run hash; NotFound if there is none, Conflict unless the run has finished."""
    h: dict[str, str] = await redis.hgetall(keys.run(run))
    if not h:
        raise NotFound(f"no run '{run}'", {"run": run})
    state = h.get("state", "")
    if state not in FINISHED:
        raise Conflict(
            f"run '{run}' is {state}: only a finished run can be redone (cancel it first)",
            {"run": run, "state": state},
        )
    return h


def named_tasks(plan: Plan, node: str) -> list[str]:
    """Tasks `node` names: a task id, a node (all its matrix copies), an ensemble (all its
    members' tasks), an ensemble's sub-node `ens.sim` (its copies in every member), or one
    member `ens[2]`."""
    return [
        t.id
        for t in plan.tasks
        if node in (t.id, t.tpl, t.group)
        or (t.group is not None and t.member is not None and node == member_id(t.group, t.member))
    ]


def with_descendants(plan: Plan, start: Iterable[str]) -> set[str]:
    children = {t.id: t.children for t in plan.tasks}
    out: set[str] = set()
    stack = list(start)
    while stack:
        tid = stack.pop()
        if tid not in out:
            out.add(tid)
            stack.extend(children[tid])
    return out


async def old_outcomes(
    redis: Redis, keys: Keys, run: str, ids: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """task id → (state, result) in `run` (None, None for a task it does not have)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for i in range(0, len(ids), READ_CHUNK):
        chunk = ids[i : i + READ_CHUNK]
        pipe = redis.pipeline(transaction=False)
        for tid in chunk:
            pipe.hmget(keys.task(run, tid), "state", "result")
        for tid, (state, result) in zip(chunk, await pipe.execute(), strict=True):
            out[tid] = (state, result)
    return out


def mark_reused(
    plan: Plan, seeds: list[str], old: dict[str, tuple[str | None, str | None]], old_run: str
) -> set[str]:
    """Mark every task outside the re-run set as reused from `old_run`; → the re-run set:
    the seeds, the tasks that did not succeed in the old run, and their descendants."""
    unfinished = [tid for tid, (state, _) in old.items() if state != "succeeded"]
    rerun = with_descendants(plan, [*seeds, *unfinished])
    for t in plan.tasks:
        if t.id not in rerun:
            t.reused_from = old_run
            t.result = old[t.id][1] or ""
    return rerun


async def redo_run(
    engine: Engine, wf: Workflow, revision: str, old_run: str, old: dict[str, str], node: str
) -> dict[str, Any]:
    """Write and release the new run (owned by the old run's owner); link both runs."""
    params = json.loads(old.get("params") or "{}")
    priority = int(old["priority"]) if old.get("priority") else None
    plan = expand(wf, params, priority, max_tasks=engine.settings.max_tasks)
    seeds = named_tasks(plan, node)
    if not seeds:
        raise NotFound(
            f"no node or task '{node}' in run '{old_run}' ({wf.name})",
            {"run": old_run, "node": node},
        )
    outcomes = await old_outcomes(engine.redis, engine.keys, old_run, [t.id for t in plan.tasks])
    rerun = mark_reused(plan, seeds, outcomes, old_run)
    meta = {
        "workflow": wf.name, "revision": revision, "owner": old.get("owner", ""),
        "redo_of": old_run, "redo_node": node,
    }
    run = await engine.submit(plan, meta)
    await engine.scripts.redo_link(old_run, run)
    logger.info("run %s redoes %s from %s: %d task(s) again, %d reused", run, old_run, node,
                len(rerun), len(plan.tasks) - len(rerun))
    return {
        "run": run, "redo_of": old_run, "node": node, "name": wf.name, "revision": revision,
        "tasks": len(plan.tasks), "rerun": len(rerun), "reused": len(plan.tasks) - len(rerun),
    }
