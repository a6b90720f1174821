"""Event nodes in Redis: waiting, deliver_event.lua, retention, isolation, cancel.

Runs are written by the engine's own writer (broker.engine.submit.write_run), so the task
hashes carry `wait_for` exactly as in production; the Harness checks the counters after
every step.
"""

from __future__ import annotations

import json
from typing import Any

from test_lua_support import NOW, Harness, harness_fixture, sh, workflow  # noqa: F401

from broker.core.expand import expand
from broker.engine.submit import write_run


def ev(key: str = "go", **kw: Any) -> dict[str, Any]:
    return {"executor": "event", "wait_for": key, **kw}


async def write(h: Harness, nodes: dict[str, Any], run: str = "r1", owner: str = "alice") -> None:
    plan = expand(workflow(nodes))
    h.plans[run] = plan
    await write_run(h.rds, h.keys, h.scripts, plan, run_id=run,
                    meta={"workflow": "w", "revision": "x", "owner": owner})


async def push(h: Harness, key: str = "go", payload: Any = None, owner: str = "alice",
               push_id: str = "p1", retain_ms: int = 0) -> tuple[int, bool, int]:
    return await h.scripts.deliver_event(owner, key, json.dumps(payload), push_id,
                                         retain_ms=retain_ms, seen_ms=60_000, recent=5, now=NOW)


async def test_a_push_completes_the_waiting_task_once_and_releases_its_children(
    h: Harness,
) -> None:
    await write(h, {"e": ev(), "b": sh(after=["e"])})
    assert (await h.task("e"))["state"] == "waiting"
    assert await h.ready() == []  # never in a ready set
    assert await h.rds.smembers(h.keys.waiting("alice", "go")) == {"r1:e"}
    assert await h.rds.smembers(h.keys.waiting_keys()) == {"alice/go"}
    await h.check()

    assert await push(h, payload={"x": 1}) == (1, False, 0)
    t = await h.task("e")
    assert (t["state"], json.loads(t["result"]), t["event"]) == ("succeeded", {"x": 1}, "p1")
    assert await h.state("b") == "ready"
    assert not await h.rds.exists(h.keys.waiting("alice", "go"))
    await h.check()

    # the same push again (a retried request) changes nothing; a new push finds no waiter
    assert await push(h, payload={"x": 2}) == (1, True, 0)
    assert await push(h, payload={"x": 3}, push_id="p2") == (0, False, 0)
    assert json.loads((await h.task("e"))["result"]) == {"x": 1}
    assert [json.loads(p)["id"] for p in await h.rds.lrange(h.keys.pushes(), 0, -1)] == [
        "p2", "p1"]
    await h.check()


async def test_a_waiting_task_after_a_worker_task_and_the_run_finishing(h: Harness) -> None:
    await write(h, {"a": sh(), "e": ev(after=["a"]), "z": ev("end", after=["e"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.state("e") == "pending"
    await h.finish("a")
    assert await h.state("e") == "waiting"  # released by complete.lua through make_ready
    await h.check()
    await push(h)
    assert (await h.state("e"), await h.state("z")) == ("succeeded", "waiting")
    await push(h, "end", push_id="p2")
    assert (await h.run())["state"] == "succeeded"
    await h.check()


async def test_another_owner_never_completes_my_task(h: Harness) -> None:
    await write(h, {"e": ev()}, owner="alice")
    await write(h, {"e": ev()}, run="r2", owner="bob")
    assert await push(h, owner="bob") == (1, False, 0)
    assert (await h.state("e"), await h.state("e", "r2")) == ("waiting", "succeeded")
    await h.check()
    await h.check("r2")


async def test_a_retained_push_reaches_tasks_that_wait_later(h: Harness) -> None:
    # pushed before anyone waits: kept for retain_ms, so a run started now gets it at once
    assert await push(h, payload="early", retain_ms=60_000) == (0, False, 0)
    await write(h, {"e": ev(), "f": ev(after=["e"]), "b": sh(after=["f"])})
    for node in ("e", "f"):  # a chain on one key: both take the retained payload
        t = await h.task(node)
        assert (t["state"], t["result"], t["event"]) == ("succeeded", '"early"', "p1")
    assert await h.state("b") == "ready"
    assert not await h.rds.exists(h.keys.waiting("alice", "go"))
    await h.check()
    # a push without retention replaces the retained one: a later waiter really waits
    await push(h, payload="now", push_id="p2")
    await write(h, {"e": ev()}, run="r2")
    assert await h.state("e", "r2") == "waiting"
    await h.check("r2")


async def test_without_retention_a_chain_on_one_key_needs_two_pushes(h: Harness) -> None:
    await write(h, {"e": ev(), "f": ev(after=["e"])})
    await push(h, payload=1)
    assert (await h.state("e"), await h.state("f")) == ("succeeded", "waiting")
    await push(h, payload=2, push_id="p2")
    assert json.loads((await h.task("f"))["result"]) == 2
    await h.check()


async def test_cancel_removes_waiting_tasks_from_the_index(h: Harness) -> None:
    await write(h, {"e": ev(), "f": ev("other")})
    await write(h, {"e": ev()}, run="r2")
    assert await h.scripts.cancel_run("r1", "stop", now=NOW) == []
    assert (await h.state("e"), await h.state("f")) == ("cancelled", "cancelled")
    assert await h.rds.smembers(h.keys.waiting("alice", "go")) == {"r2:e"}
    assert await h.rds.smembers(h.keys.waiting_keys()) == {"alice/go"}  # alice/other is gone
    await h.check()
    assert await push(h) == (1, False, 0)  # only r2's task
    assert await h.state("e") == "cancelled"
