"""Helpers for the Lua script tests (no tests here): write runs by hand, act as a worker.

A run is written the way DESIGN.md describes it (task hashes with counters and children,
run hash with per-state counters, one spec per node, roots staged until `release_run`),
straight from `broker.core.expand.expand(...)`, so the scripts are tested on their own,
independently of the engine's writer. `Harness.check` asserts the bookkeeping invariants
(per-state counters, `remaining`, ready/unfit/delayed set membership) after any step.

The test modules import `harness_fixture` (the `h` fixture) from here.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aredis

from broker.core.expand import Plan, expand
from broker.core.parse import parse_workflow
from broker.core.scoring import score
from broker.engine.scripts import Scripts
from broker.keys import WORKER_GROUP, Keys
from broker.spec import task_spec_encoder
from broker.wire import COMPLETION_FIELDS, Completion, Outcome, TaskMessage, TaskState

NOW = 1_700_000_000_000  # a fixed "now" (ms) for scripts whose effect depends on time

TERMINAL = {"succeeded", "failed", "upstream_failed", "cancelled"}
TASK_STATES = [s.value for s in TaskState]


def workflow(nodes: dict[str, Any], **top: Any) -> Any:
    return parse_workflow(json.dumps({"name": "w", "nodes": nodes, **top}).encode())


def sh(cmd: str = "true", **kw: Any) -> dict[str, Any]:
    return {"command": cmd, **kw}


def completion_args(c: Completion) -> list[str]:
    fields = c.to_fields()
    return [fields[k] for k in COMPLETION_FIELDS]


class Harness:
    """One test's view of Redis: its prefix, the scripts, and a fake worker."""

    def __init__(self, rds: aredis.Redis, keys: Keys) -> None:
        self.rds = rds
        self.keys = keys
        self.scripts = Scripts(rds, keys.prefix)
        self.max_lost = 3
        self.plans: dict[str, Plan] = {}

    # -- writing runs ---------------------------------------------------------------------

    async def submit(
        self,
        nodes: dict[str, Any],
        run: str = "r1",
        *,
        overrides: dict[str, Any] | None = None,
        priority: int | None = None,
        release: bool = True,
        sparse: bool = False,
        now: int = NOW,
        **top: Any,
    ) -> Plan:
        """Expand `nodes` and write the run; release it (roots → ready sets) unless told not to.

        `sparse` omits fields at their default (trigger all_success, max_attempts 1, no
        deps_left on roots), as a minimal writer would: the scripts must default them alike.
        """
        plan = expand(workflow(nodes, **top), overrides, priority)
        self.plans[run] = plan
        k, r = self.keys, self.rds
        roots = [t for t in plan.tasks if not t.parents]
        seq = int(await r.incrby(k.seq(), len(roots))) - len(roots) + 1
        await r.hset(
            k.run(run),
            mapping={
                "state": "expanding",
                "priority": plan.priority,
                "params": json.dumps(plan.params),
                "total": len(plan.tasks),
                "remaining": len(plan.tasks),
                "n_pending": len(plan.tasks) - len(roots),
                "n_ready": len(roots),
                "created_at": now,
            },
        )
        await r.hset(
            k.spec(run),
            mapping={
                tpl: task_spec_encoder.encode(s).decode() for tpl, s in plan.templates.items()
            },
        )
        await r.sadd(k.classes(), *plan.classes)
        for t in plan.tasks:
            fields: dict[str, Any] = {
                "state": "pending" if t.parents else "ready",
                "attempt": 1,
                "class": t.rclass,
                "priority": t.priority,
                "tpl": t.tpl,
                "batch": t.batch_key,
                "deps_left": len(t.parents),
                "parents": ",".join(t.parents),
                "children": ",".join(t.children),
                "trigger": t.trigger,
                "max_attempts": t.max_attempts,
                "backoff_ms": t.backoff_ms,
            }
            if t.vars is not None:
                fields["vars"] = json.dumps(t.vars)
            if sparse:
                for name, default in (("trigger", "all_success"), ("max_attempts", 1)):
                    if fields[name] == default:
                        del fields[name]
                if fields.get("max_attempts") is None:
                    del fields["backoff_ms"]
                for name in ("deps_left", "parents", "children"):
                    if not fields[name]:
                        del fields[name]
            await r.hset(k.task(run, t.id), mapping=fields)
            if not t.parents:
                await r.zadd(k.staging(run, t.rclass), {f"{run}:{t.id}": score(t.priority, seq)})
                seq += 1
        await r.rpush(k.tasks(run), *(t.id for t in plan.tasks))
        if release:
            assert await self.release(run) == len(roots)
        return plan

    async def release(self, run: str, now: int = NOW) -> int:
        classes = sorted({t.rclass for t in self.plans[run].tasks if not t.parents})
        return await self.scripts.release_run(run, classes, now=now)

    async def capacity(self, rclass: str, slots: int) -> None:
        await self.rds.hset(self.keys.capacity(), rclass, slots)

    async def dispatch(self, *classes: str) -> int:
        return await self.scripts.dispatch(classes or ["cpu"], now=NOW)

    # -- reading state --------------------------------------------------------------------

    async def task(self, node: str, run: str = "r1") -> dict[str, str]:
        return await self.rds.hgetall(self.keys.task(run, node))

    async def state(self, node: str, run: str = "r1") -> str | None:
        return await self.rds.hget(self.keys.task(run, node), "state")

    async def states(self, run: str = "r1") -> dict[str, str]:
        ids = await self.rds.lrange(self.keys.tasks(run), 0, -1)
        return {i: await self.state(i, run) or "" for i in ids}

    async def run(self, run: str = "r1") -> dict[str, str]:
        return await self.rds.hgetall(self.keys.run(run))

    async def ready(self, rclass: str = "cpu") -> list[tuple[str, float]]:
        return await self.rds.zrange(self.keys.ready(rclass), 0, -1, withscores=True)

    async def queue(self, rclass: str = "cpu") -> list[TaskMessage]:
        stream = self.keys.queue(rclass)
        return [
            TaskMessage.from_fields(stream, mid, fields)
            for mid, fields in await self.rds.xrange(stream)
        ]

    async def queued(self, rclass: str = "cpu") -> list[str]:
        return [m.node for m in await self.queue(rclass)]

    async def events(self) -> list[dict[str, str]]:
        return [f for _, f in await self.rds.xrange(self.keys.events())]

    # -- acting as a worker ---------------------------------------------------------------

    async def drop(self, node: str, run: str = "r1", rclass: str | None = None) -> int:
        """Remove a task's entries from its class stream, as a worker's XACK + XDEL does."""
        rclass = rclass or (await self.task(node, run))["class"]
        stream = self.keys.queue(rclass)
        ids = [m.msg_id for m in await self.queue(rclass) if m.run == run and m.node == node]
        if ids:
            await self.rds.xdel(stream, *ids)
        return len(ids)

    async def start(
        self, node: str, run: str = "r1", attempt: int | None = None, runner: str = "w1"
    ) -> bool:
        if attempt is None:
            attempt = int((await self.task(node, run))["attempt"])
        (ok,) = await self.scripts.start(runner, [(run, node, attempt)], now=NOW)
        return ok

    async def report(
        self,
        node: str,
        outcome: str = "succeeded",
        run: str = "r1",
        *,
        attempt: int | None = None,
        drop: bool = True,
        now: int = NOW,
        times: int = 1,
        **kw: Any,
    ) -> tuple[int, int, int]:
        """Send one completion (`times` copies in one call); by default for the current attempt."""
        if attempt is None:
            attempt = int((await self.task(node, run))["attempt"])
        if drop:
            await self.drop(node, run)
        c = Completion(
            run=run,
            node=node,
            attempt=attempt,
            outcome=Outcome(outcome),
            runner=kw.pop("runner", "w1"),
            **kw,
        )
        return await self.scripts.complete(
            [completion_args(c)] * times, max_lost=self.max_lost, now=now
        )

    async def finish(
        self, node: str, outcome: str = "succeeded", run: str = "r1", **kw: Any
    ) -> tuple[int, int, int]:
        """Start (if dispatched) and report: the usual life of one attempt."""
        if await self.state(node, run) == "dispatched":
            assert await self.start(node, run)
        return await self.report(node, outcome, run, **kw)

    # -- invariants -----------------------------------------------------------------------

    async def check(self, run: str = "r1") -> dict[str, str]:
        """Counters, `remaining` and set membership agree with the task hashes."""
        k, r = self.keys, self.rds
        states = await self.states(run)
        counts = Counter(states.values())
        rh = await self.run(run)
        for st in TASK_STATES:
            assert int(rh.get(f"n_{st}", 0)) == counts.get(st, 0), (st, rh, counts)
        assert set(counts) <= set(TASK_STATES), counts
        open_tasks = sum(n for st, n in counts.items() if st not in TERMINAL)
        if rh["state"] in ("running", "expanding"):
            assert int(rh["remaining"]) == open_tasks, (rh, counts)
        else:
            assert int(rh["remaining"]) == 0
            assert open_tasks == 0, counts
            assert not await r.sismember(k.active_runs(), run)
        delayed = set(await r.zrange(k.delayed(), 0, -1))
        for node, st in states.items():
            member = f"{run}:{node}"
            rclass = await r.hget(k.task(run, node), "class")
            in_ready = await r.zscore(k.ready(rclass), member) is not None
            parked = await r.zscore(k.unfit(rclass), member) is not None  # fits no live runner
            assert not (in_ready and parked), (node, st)
            in_ready = in_ready or parked
            staged = await r.zscore(k.staging(run, rclass), member) is not None
            assert in_ready == (st == "ready" and rh["state"] != "expanding"), (node, st)
            assert staged == (st == "ready" and rh["state"] == "expanding"), (node, st)
            assert (member in delayed) == (st == "retry_wait"), (node, st)
        return states


@pytest.fixture(name="h")
def harness_fixture(rds: aredis.Redis, keys: Keys) -> Harness:
    """`h`: a Harness on this test's prefix (import `harness_fixture` to use it)."""
    return Harness(rds, keys)


async def create_group(rds: aredis.Redis, stream: str, group: str = WORKER_GROUP) -> None:
    await rds.xgroup_create(stream, group, id="0", mkstream=True)
