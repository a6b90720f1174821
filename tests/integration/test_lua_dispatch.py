"""dispatch.lua: capacity minus stream length; priority first, FIFO within one (invariant 4)."""

from __future__ import annotations

import json

from test_lua_support import NOW, Harness, harness_fixture, sh  # noqa: F401

from broker.spec import TaskSpec, task_spec_decoder


async def test_nothing_is_dispatched_without_capacity(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh()})
    assert await h.dispatch() == 0
    assert await h.rds.xlen(h.keys.queue("cpu")) == 0
    assert [m for m, _ in await h.ready()] == ["r1:a", "r1:b"]
    await h.check()


async def test_dispatch_respects_capacity_minus_stream_length(h: Harness) -> None:
    await h.submit({f"t{i}": sh() for i in range(5)})
    await h.capacity("cpu", 2)
    assert await h.dispatch() == 2
    assert await h.queued() == ["t0", "t1"]
    # the stream is full: nothing more until an entry leaves it
    assert await h.dispatch() == 0
    assert await h.rds.xlen(h.keys.queue("cpu")) == 2
    await h.drop("t0")
    assert await h.dispatch() == 1
    assert await h.queued() == ["t1", "t2"]
    # more capacity → more entries, never more than capacity in the stream
    await h.capacity("cpu", 5)
    assert await h.dispatch() == 2  # budget 3, but only two are ready
    assert await h.rds.xlen(h.keys.queue("cpu")) == 4
    assert await h.ready() == []
    states = await h.check()
    assert list(states.values()).count("dispatched") == 5  # t0 is still dispatched (not reported)


async def test_capacity_below_stream_length_dispatches_nothing(h: Harness) -> None:
    await h.submit({f"t{i}": sh() for i in range(4)})
    await h.capacity("cpu", 3)
    assert await h.dispatch() == 3
    await h.capacity("cpu", 1)  # a runner left
    assert await h.dispatch() == 0
    assert len(await h.ready()) == 1


async def test_higher_priority_first_then_fifo(h: Harness) -> None:
    nodes = {
        "low1": sh(priority=-5),
        "mid1": sh(priority=0),
        "high1": sh(priority=7),
        "mid2": sh(priority=0),
        "low2": sh(priority=-5),
        "high2": sh(priority=7),
        "top": sh(priority=1000),
        "bottom": sh(priority=-1000),
    }
    await h.submit(nodes)
    await h.capacity("cpu", 1)
    order = []
    for _ in range(len(nodes)):
        assert await h.dispatch() == 1
        (msg,) = await h.queue()
        order.append(msg.node)
        await h.drop(msg.node)
    assert order == ["top", "high1", "high2", "mid1", "mid2", "low1", "low2", "bottom"]


async def test_later_higher_priority_run_goes_first(h: Harness) -> None:
    """The stream holds only what the free slots take, so a later urgent run overtakes."""
    await h.submit({f"bulk{i}": sh() for i in range(10)}, run="bulk")
    await h.capacity("cpu", 2)
    assert await h.dispatch() == 2
    await h.submit({"urgent": sh()}, run="hot", priority=500)
    await h.drop("bulk0", run="bulk")
    assert await h.dispatch() == 1
    msgs = await h.queue()
    assert [(m.run, m.node) for m in msgs] == [("bulk", "bulk1"), ("hot", "urgent")]
    assert msgs[1].priority == 500


async def test_fifo_follows_release_order_not_node_order(h: Harness) -> None:
    await h.submit({"p1": sh(), "p2": sh(), "c1": sh(after=["p1"]), "c2": sh(after=["p2"])})
    await h.capacity("cpu", 2)
    assert await h.dispatch() == 2
    await h.capacity("cpu", 0)
    await h.finish("p2")  # c2 is released first
    await h.finish("p1")
    assert [m for m, _ in await h.ready()] == ["r1:c2", "r1:c1"]
    await h.capacity("cpu", 1)
    assert await h.dispatch() == 1
    assert await h.queued() == ["c2"]


async def test_classes_are_independent(h: Harness) -> None:
    await h.submit(
        {"c": sh(), "g": sh(resources={"gpus": 1}), "m": sh(resources={"memory": "64G"})}
    )
    await h.capacity("cpu", 5)
    await h.capacity("gpu", 5)
    assert await h.dispatch("cpu") == 1
    assert await h.queued("cpu") == ["c"]
    assert await h.queued("gpu") == []
    assert await h.dispatch("gpu", "bigmem") == 1  # no bigmem capacity
    assert await h.queued("gpu") == ["g"]
    assert await h.state("m") == "ready"
    await h.capacity("bigmem", 1)
    assert await h.dispatch("cpu", "gpu", "bigmem") == 1
    assert await h.queued("bigmem") == ["m"]
    await h.check()


async def test_stream_message_fields(h: Harness) -> None:
    plan = await h.submit(
        {
            "prep": sh("echo {{ n }}", env={"A": "1"}),
            "sim": sh("run {{ v }}", after=["prep"], matrix={"v": [1, "two"]}, priority=3),
        },
        params={"n": 2},
        priority=10,
    )
    await h.capacity("cpu", 10)
    assert await h.dispatch() == 1
    (msg,) = await h.queue()
    assert (msg.run, msg.node, msg.attempt, msg.tpl) == ("r1", "prep", 1, "prep")
    assert msg.spec == plan.templates["prep"]
    assert msg.spec.env == {"A": "1"}
    assert msg.params == {"n": 2}
    assert msg.vars is None and msg.parents == []
    assert msg.priority == 10
    assert msg.batch == plan.tasks[0].batch_key
    await h.finish("prep")
    msgs = await h.queue()
    assert [m.node for m in msgs] == ["sim[0]", "sim[1]"]
    assert [m.vars for m in msgs] == [{"v": 1}, {"v": "two"}]
    assert all(m.parents == ["prep"] and m.tpl == "sim" and m.priority == 13 for m in msgs)
    assert msgs[0].spec == msgs[1].spec == plan.templates["sim"]
    # the raw entry is readable text
    _, raw = (await h.rds.xrange(h.keys.queue("cpu")))[-1]
    assert set(raw) == {
        "run",
        "node",
        "attempt",
        "tpl",
        "batch",
        "spec",
        "vars",
        "params",
        "parents",
        "priority",
    }
    assert json.loads(raw["vars"]) == {"v": "two"}
    assert isinstance(task_spec_decoder.decode(raw["spec"]), TaskSpec)


async def test_matrix_copies_share_one_spec(h: Harness) -> None:
    await h.submit({"sim": sh("run {{ v }}", matrix={"v": list(range(50))})})
    assert await h.rds.hkeys(h.keys.spec("r1")) == ["sim"]
    assert await h.rds.hget(h.keys.task("r1", "sim[7]"), "vars") == json.dumps({"v": 7})


async def test_dispatch_updates_state_counters_and_events(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(), "c": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    t = await h.task("a")
    assert t["state"] == "dispatched"
    assert t["dispatched_at"] == str(NOW)
    run = await h.run()
    assert (run["n_ready"], run["n_dispatched"], run["n_pending"]) == ("1", "1", "1")
    events = await h.events()
    assert {
        "kind": "task",
        "run": "r1",
        "node": "a",
        "state": "dispatched",
        "attempt": "1",
    }.items() <= events[-1].items()
    await h.check()


async def test_a_member_whose_task_is_not_ready_is_dropped(h: Harness) -> None:
    """A stale ready-set member (its task moved on) is removed, never dispatched twice."""
    await h.submit({"a": sh(), "b": sh()})
    await h.rds.hset(h.keys.task("r1", "a"), "state", "cancelled")
    await h.capacity("cpu", 5)
    assert await h.dispatch() == 1
    assert await h.queued() == ["b"]
    assert await h.ready() == []


async def test_dispatch_of_several_runs_reads_each_runs_params(h: Harness) -> None:
    await h.submit({"a": sh("echo {{ x }}")}, run="r1", overrides={"x": 1}, params={"x": 0})
    await h.submit({"a": sh("echo {{ x }}")}, run="r2", overrides={"x": 2}, params={"x": 0})
    await h.capacity("cpu", 2)
    assert await h.dispatch() == 2
    assert {m.run: m.params for m in await h.queue()} == {"r1": {"x": 1}, "r2": {"x": 2}}
