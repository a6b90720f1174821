"""start.lua, release_run.lua and cancel_run.lua."""

from __future__ import annotations

from test_lua_support import NOW, Harness, harness_fixture, sh  # noqa: F401

# -- start ----------------------------------------------------------------------------------


async def test_start_marks_the_current_attempt_running(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh()})
    await h.capacity("cpu", 2)
    await h.dispatch()
    oks = await h.scripts.start(
        "w7", [("r1", "a", 1), ("r1", "b", 2), ("r1", "zz", 1), ("nope", "a", 1)], now=NOW
    )
    assert oks == [True, False, False, False]
    t = await h.task("a")
    assert (t["state"], t["runner"], t["started_at"]) == ("running", "w7", str(NOW))
    assert await h.state("b") == "dispatched"
    ev = (await h.events())[-1]
    assert (ev["node"], ev["state"], ev["runner"], ev["attempt"]) == ("a", "running", "w7", "1")
    await h.check()


async def test_start_twice_is_refused(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.start("a", runner="w1")
    assert not await h.start("a", runner="w2")  # a reclaimed duplicate must not run it again
    assert (await h.task("a"))["runner"] == "w1"


async def test_start_of_a_task_that_is_not_dispatched(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"])})
    assert not await h.start("a", attempt=1)  # ready
    assert not await h.start("b", attempt=1)  # pending
    await h.check()


async def test_start_of_an_old_attempt_after_requeue(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.report("a", "lost")  # requeued and re-dispatched as attempt 2
    assert not await h.start("a", attempt=1)
    assert await h.start("a", attempt=2)


async def test_running_task_can_complete(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.start("a")
    assert await h.report("a") == (1, 0, 0)
    assert (await h.run())["state"] == "succeeded"


# -- release_run ----------------------------------------------------------------------------


async def test_nothing_is_dispatchable_before_release(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(), "c": sh(after=["a"])}, release=False)
    await h.capacity("cpu", 10)
    assert await h.dispatch() == 0
    assert await h.ready() == []
    assert await h.rds.zcard(h.keys.staging("r1", "cpu")) == 2
    run = await h.run()
    assert run["state"] == "expanding"
    await h.check()
    assert await h.release("r1", now=NOW + 5) == 2
    run = await h.run()
    assert (run["state"], run["started_at"]) == ("running", str(NOW + 5))
    assert await h.rds.sismember(h.keys.active_runs(), "r1")
    assert not await h.rds.exists(h.keys.staging("r1", "cpu"))
    assert sorted(await h.queued()) == ["a", "b"]  # dispatched within the same script
    await h.check()


async def test_release_refuses_a_run_not_expanding(h: Harness) -> None:
    await h.submit({"a": sh()})  # released: running
    assert await h.release("r1") == -1
    assert len(await h.ready()) == 1  # not added twice
    assert await h.scripts.release_run("ghost", ["cpu"], now=NOW) == -1
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a")
    assert await h.release("r1") == -1  # finished
    assert (await h.run())["state"] == "succeeded"


async def test_release_refuses_a_cancelled_expansion(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"])}, release=False)
    assert await h.scripts.cancel_run("r1", "cancelled by user", now=NOW) == []
    assert await h.release("r1") == -1
    assert await h.ready() == []
    assert not await h.rds.exists(h.keys.staging("r1", "cpu"))
    assert await h.states() == {"a": "cancelled", "b": "cancelled"}
    await h.check()


async def test_release_of_many_roots_in_several_classes(h: Harness) -> None:
    nodes = {f"c{i}": sh(priority=i % 7) for i in range(2500)} | {
        f"g{i}": sh(resources={"gpus": 1}) for i in range(3)
    }
    await h.submit(nodes, release=False)
    staged = await h.rds.zrange(h.keys.staging("r1", "cpu"), 0, -1, withscores=True)
    assert await h.release("r1") == 2503
    assert await h.ready("cpu") == staged  # same members, same scores, same order
    assert len(await h.ready("gpu")) == 3
    assert await h.rds.zcard(h.keys.staging("r1", "cpu")) == 0


async def test_release_dispatches_up_to_capacity(h: Harness) -> None:
    await h.submit({f"t{i}": sh() for i in range(5)}, release=False)
    await h.capacity("cpu", 2)
    await h.release("r1")
    assert await h.queued() == ["t0", "t1"]
    await h.check()


# -- cancel_run -----------------------------------------------------------------------------


async def test_cancel_run_stops_everything(h: Harness) -> None:
    nodes = {
        "done": sh(),
        "running": sh(),
        "dispatched": sh(),
        "waiting": sh(retries=2, retry_backoff=60),
        "ready": sh(),
        "pending": sh(after=["done", "running"]),
    }
    await h.submit(nodes)
    await h.capacity("cpu", 4)
    await h.dispatch()  # done, running, dispatched, waiting
    await h.capacity("cpu", 0)  # keep `ready` in its ready set
    await h.finish("done")
    assert await h.start("running", runner="w5")
    await h.finish("waiting", "failed")
    states = await h.check()
    assert states == {
        "done": "succeeded",
        "running": "running",
        "dispatched": "dispatched",
        "waiting": "retry_wait",
        "ready": "ready",
        "pending": "pending",
    }
    out = await h.scripts.cancel_run("r1", "cancelled by alice", now=NOW + 1)
    assert out == [("w5", "running")]
    states = await h.check()
    assert states == {"done": "succeeded"} | {n: "cancelled" for n in nodes if n != "done"}
    run = await h.run()
    assert (run["state"], run["reason"], run["remaining"]) == (
        "cancelled",
        "cancelled by alice",
        "0",
    )
    assert run["finished_at"] == str(NOW + 1)
    assert (run["n_cancelled"], run["n_succeeded"]) == ("5", "1")
    assert not await h.rds.sismember(h.keys.active_runs(), "r1")
    assert await h.ready() == []
    assert await h.rds.zrange(h.keys.delayed(), 0, -1) == []
    t = await h.task("pending")
    assert (t["reason"], t["finished_at"]) == ("cancelled by alice", str(NOW + 1))
    # afterwards nothing of the run can start, finish, retry or be dispatched
    await h.capacity("cpu", 10)
    assert await h.dispatch() == 0
    assert not await h.start("dispatched")
    assert await h.report("running", drop=False) == (0, 1, 0)
    assert await h.report("dispatched", "failed", drop=False) == (0, 1, 0)
    assert await h.scripts.promote(now=NOW + 10**9) == (0, 0)
    states = await h.check()
    assert states["pending"] == "cancelled"
    run_events = [e for e in await h.events() if e["kind"] == "run"]
    assert run_events[-1] == {
        "ts": str(NOW + 1),
        "kind": "run",
        "run": "r1",
        "state": "cancelled",
        "reason": "cancelled by alice",
    }


async def test_cancel_run_results(h: Harness) -> None:
    assert await h.scripts.cancel_run("ghost", "x", now=NOW) == -1
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a")
    assert await h.scripts.cancel_run("r1", "x", now=NOW) == -2
    assert (await h.run())["state"] == "succeeded"


async def test_cancel_twice(h: Harness) -> None:
    await h.submit({"a": sh()})
    assert await h.scripts.cancel_run("r1", "x", now=NOW) == []
    assert await h.scripts.cancel_run("r1", "x", now=NOW) == -2
    assert (await h.run())["n_cancelled"] == "1"


async def test_failed_expansion_is_finished_as_failed(h: Harness) -> None:
    await h.submit({"a": sh(), "g": sh(resources={"gpus": 1}), "b": sh(after=["a"])}, release=False)
    out = await h.scripts.cancel_run("r1", "expansion interrupted", "failed", now=NOW)
    assert out == []
    run = await h.run()
    assert (run["state"], run["reason"]) == ("failed", "expansion interrupted")
    for rclass in ("cpu", "gpu"):
        assert not await h.rds.exists(h.keys.staging("r1", rclass))
    await h.capacity("cpu", 10)
    await h.capacity("gpu", 10)
    assert await h.dispatch("cpu", "gpu") == 0
    await h.check()


async def test_cancel_one_run_leaves_another_alone(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh()}, run="r1")
    await h.submit({"a": sh(), "b": sh()}, run="r2")
    await h.scripts.cancel_run("r1", "x", now=NOW)
    assert await h.states("r2") == {"a": "ready", "b": "ready"}
    assert [m for m, _ in await h.ready()] == ["r2:a", "r2:b"]
    await h.check("r1")
    await h.check("r2")
