"""Random DAGs run to the end by a misbehaving fake worker pool, checking invariants 1 and 2.

The pool fails, loses and hands back tasks, replays completions and sends stale ones. After
every step the counters must agree with the task hashes; every dispatched task must have had
its dependencies satisfied; no (task, attempt) is dispatched twice; a task succeeds at most
once; and the run ends in the state its tasks imply.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_lua_support import NOW, TERMINAL, Harness, completion_args, harness_fixture, sh  # noqa: F401

from broker.core.expand import Plan
from broker.wire import Completion, Outcome, TaskMessage


def random_dag(rnd: random.Random) -> dict[str, Any]:
    n = rnd.randint(2, 25)
    names = [f"n{i}" for i in range(n)]
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        node = sh(
            after=rnd.sample(names[:i], rnd.randint(0, min(i, 3))),
            retries=rnd.choice([0, 0, 1, 2]),
            retry_backoff=rnd.choice([0, 0.001, 0.05]),
            priority=rnd.randint(-3, 3),
        )
        if node["after"] and rnd.random() < 0.25:
            node["trigger"] = "all_done"
        if rnd.random() < 0.15:
            node["matrix"] = {"v": list(range(rnd.randint(1, 3)))}
        if rnd.random() < 0.2:
            node["resources"] = {"gpus": 1}
        nodes[name] = node
    return nodes


OUTCOMES = [("succeeded", 0.72), ("failed", 0.14), ("lost", 0.06), ("handed_back", 0.08)]


class Pool:
    """A fake worker pool that misbehaves at random, checking what it receives."""

    def __init__(self, h: Harness, plan: Plan, rnd: random.Random) -> None:
        self.h = h
        self.rnd = rnd
        self.parents = {t.id: t.parents for t in plan.tasks}
        self.trigger = {t.id: t.trigger for t in plan.tasks}
        self.classes = sorted(plan.classes)
        self.seen: set[tuple[str, int]] = set()
        self.succeeded: set[str] = set()
        self.now = NOW

    async def check_new(self, inflight: list[TaskMessage]) -> None:
        """Invariant 1 for each newly dispatched (task, attempt); none is dispatched twice."""
        for m in inflight:
            if (m.node, m.attempt) in self.seen:
                continue
            self.seen.add((m.node, m.attempt))
            states = await self.h.states()
            allowed = {"succeeded"} if self.trigger[m.node] == "all_success" else TERMINAL
            assert all(states[p] in allowed for p in self.parents[m.node]), (m.node, states)

    async def report(self, m: TaskMessage) -> None:
        rnd = self.rnd
        outcome = rnd.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        if rnd.random() < 0.8:
            await self.h.start(m.node, attempt=m.attempt)
        c = Completion(
            run="r1", node=m.node, attempt=m.attempt, outcome=Outcome(outcome), runner="w"
        )
        await self.h.rds.xdel(m.stream, m.msg_id)
        batch = [completion_args(c)]
        if rnd.random() < 0.3:  # replayed delivery, possibly in the same batch
            batch.append(completion_args(c))
        if m.attempt > 1 and rnd.random() < 0.2:  # a stale report of an earlier attempt
            stale = Completion(
                run="r1",
                node=m.node,
                attempt=m.attempt - 1,
                outcome=Outcome.SUCCEEDED,
                runner="w",
            )
            batch.insert(0, completion_args(stale))
        applied, _, _ = await self.h.scripts.complete(batch, max_lost=self.h.max_lost, now=self.now)
        assert applied == 1
        if outcome == "succeeded":
            assert m.node not in self.succeeded
            self.succeeded.add(m.node)

    async def step(self) -> None:
        h, rnd = self.h, self.rnd
        self.now += rnd.randint(0, 60)
        await h.scripts.promote(now=self.now)
        await h.scripts.dispatch(self.classes, now=self.now)
        inflight = [m for c in self.classes for m in await h.queue(c)]
        await self.check_new(inflight)
        rnd.shuffle(inflight)
        for m in inflight[: rnd.randint(0, len(inflight))]:
            await self.report(m)
        await h.check()
        self.now += 100_000  # every backoff in this test elapses by the next step

    def check_final(self, states: dict[str, str], run_state: str) -> None:
        assert all(s in TERMINAL for s in states.values())
        assert {n for n, s in states.items() if s == "succeeded"} == self.succeeded
        bad = any(s in ("failed", "upstream_failed") for s in states.values())
        assert run_state == ("failed" if bad else "succeeded")
        for node, st in states.items():
            parents_ok = all(states[p] == "succeeded" for p in self.parents[node])
            if st == "upstream_failed":
                assert self.trigger[node] == "all_success" and not parents_ok
            elif self.trigger[node] == "all_success" and st in ("succeeded", "failed"):
                assert parents_ok


@pytest.mark.parametrize("seed", range(30))
async def test_random_run_keeps_the_invariants(h: Harness, seed: int) -> None:
    rnd = random.Random(seed)
    h.max_lost = rnd.randint(1, 3)
    plan = await h.submit(random_dag(rnd), sparse=rnd.random() < 0.5)
    pool = Pool(h, plan, rnd)
    for c in pool.classes:
        await h.capacity(c, rnd.randint(1, 4))
    for _ in range(2000):
        if (await h.run())["state"] != "running":
            break
        await pool.step()
    else:
        pytest.fail("the run did not finish")
    pool.check_final(await h.check(), (await h.run())["state"])
