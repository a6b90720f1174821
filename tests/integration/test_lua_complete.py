"""complete.lua: release exactly once (invariant 2), dependencies and triggers (invariant 1),
failure cascades, run completion, stale reports, acknowledgement."""

from __future__ import annotations

import json

import pytest
from test_lua_support import NOW, Harness, completion_args, create_group, harness_fixture, sh  # noqa: F401

from broker.keys import BROKER_GROUP
from broker.wire import COMPLETION_FIELDS, Completion, Outcome

DIAMOND = {
    "prepare": sh(),
    "left": sh(after=["prepare"]),
    "right": sh(after=["prepare"]),
    "combine": sh(after=["left", "right"]),
}


@pytest.fixture(params=[False, True], ids=["full", "sparse"])
def sparse(request: pytest.FixtureRequest) -> bool:
    """Task hashes with every field written, and with default-valued fields left out."""
    return bool(request.param)


def test_completion_fields_match_the_wire_order() -> None:
    c = Completion(
        run="r",
        node="n",
        attempt=2,
        outcome=Outcome.FAILED,
        runner="w",
        exit_code=3,
        reason="x",
        result={"a": 1},
        tail="t",
        started_at_ms=5,
        finished_at_ms=6,
    )
    assert completion_args(c) == ["r", "n", "2", "failed", "w", "3", "x", '{"a":1}', "t", "5", "6"]
    assert list(c.to_fields()) == list(COMPLETION_FIELDS)
    assert len(COMPLETION_FIELDS) == 11  # complete.lua reads 11 ARGV per completion


async def test_diamond_runs_in_dependency_order(h: Harness, sparse: bool) -> None:
    await h.submit(DIAMOND, sparse=sparse)
    await h.capacity("cpu", 10)
    assert await h.dispatch() == 1
    assert await h.queued() == ["prepare"]
    assert (await h.task("combine"))["deps_left"] == "2"
    applied, ignored, dispatched = await h.finish("prepare")
    assert (applied, ignored, dispatched) == (1, 0, 2)
    assert sorted(await h.queued()) == ["left", "right"]
    await h.finish("left")
    assert await h.state("combine") == "pending"
    assert (await h.task("combine"))["deps_left"] == "1"
    await h.check()
    await h.finish("right")
    assert await h.state("combine") == "dispatched"
    assert (await h.task("combine"))["deps_left"] == "0"
    await h.finish("combine", result={"total": 3})
    run = await h.run()
    assert run["state"] == "succeeded"
    assert run["finished_at"] == str(NOW)
    assert (run["n_succeeded"], run["remaining"]) == ("4", "0")
    assert not await h.rds.sismember(h.keys.active_runs(), "r1")
    assert json.loads((await h.task("combine"))["result"]) == {"total": 3}
    await h.check()
    assert [e for e in await h.events() if e["kind"] == "run"][-1]["state"] == "succeeded"


async def test_success_records_the_report(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish(
        "a",
        runner="w9",
        exit_code=0,
        tail="last line",
        result=[1, 2],
        started_at_ms=NOW - 500,
        finished_at_ms=NOW - 1,
    )
    t = await h.task("a")
    assert t["state"] == "succeeded"
    assert (t["runner"], t["exit_code"], t["tail"]) == ("w9", "0", "last line")
    assert (t["started_at"], t["finished_at"]) == (str(NOW - 500), str(NOW - 1))
    assert json.loads(t["result"]) == [1, 2]
    assert t["reason"] == ""


async def test_duplicate_completion_releases_children_once(h: Harness, sparse: bool) -> None:
    """Invariant 2: the join `combine` must not become ready on a replayed `left` alone."""
    await h.submit(DIAMOND, sparse=sparse)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("prepare")
    assert await h.finish("left") == (1, 0, 0)
    for _ in range(3):  # redelivered after the broker died before acking
        assert await h.report("left", attempt=1) == (0, 1, 0)
    t = await h.task("combine")
    assert (t["state"], t["deps_left"]) == ("pending", "1")
    run = await h.run()
    assert (run["n_succeeded"], run["remaining"]) == ("2", "2")
    await h.check()


async def test_duplicate_in_the_same_batch_applies_once(h: Harness) -> None:
    await h.submit(DIAMOND)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("prepare")
    assert await h.report("left", times=2) == (1, 1, 0)
    assert (await h.task("combine"))["deps_left"] == "1"
    await h.check()


async def test_duplicate_of_the_last_completion_does_not_finish_twice(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a")
    await h.report("a", attempt=1)
    run = await h.run()
    assert (run["state"], run["remaining"], run["n_succeeded"]) == ("succeeded", "0", "1")
    assert (
        len([e for e in await h.events() if e["kind"] == "run" and e["state"] == "succeeded"]) == 1
    )


async def test_report_for_a_task_not_yet_dispatched_is_ignored(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"])})
    assert await h.report("a", attempt=1) == (0, 1, 0)  # ready, not dispatched
    assert await h.report("b", attempt=1) == (0, 1, 0)  # pending
    assert await h.states() == {"a": "ready", "b": "pending"}
    await h.check()


async def test_stale_attempt_is_ignored(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "handed_back")  # attempt 1 is requeued as attempt 2
    assert (await h.task("a"))["attempt"] == "2"
    assert await h.state("a") == "dispatched"
    for outcome in ("succeeded", "failed", "lost", "cancelled", "handed_back"):
        assert await h.report("a", outcome, attempt=1, drop=False) == (0, 1, 0)
    assert await h.state("a") == "dispatched"
    assert await h.state("b") == "pending"
    assert await h.finish("a", attempt=2) == (1, 0, 1)
    assert await h.state("b") == "dispatched"
    await h.check()


async def test_future_attempt_and_unknown_run_are_ignored(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.report("a", attempt=2, drop=False) == (0, 1, 0)
    c = Completion(run="nope", node="a", attempt=1, outcome=Outcome.SUCCEEDED, runner="w")
    assert await h.scripts.complete([completion_args(c)], max_lost=3, now=NOW) == (0, 1, 0)
    assert await h.state("a") == "dispatched"


async def test_unknown_outcome_is_ignored(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    args = completion_args(
        Completion(run="r1", node="a", attempt=1, outcome=Outcome.SKIPPED, runner="w")
    )
    assert await h.scripts.complete([args], max_lost=3, now=NOW) == (0, 1, 0)
    args[3] = "exploded"
    assert await h.scripts.complete([args], max_lost=3, now=NOW) == (0, 1, 0)
    assert await h.state("a") == "dispatched"


async def test_completion_frees_capacity_and_dispatches(h: Harness) -> None:
    await h.submit({f"t{i}": sh() for i in range(3)})
    await h.capacity("cpu", 1)
    assert await h.dispatch() == 1
    assert await h.finish("t0") == (1, 0, 1)
    assert await h.queued() == ["t1"]


async def test_completion_before_the_worker_acked_keeps_the_slot(h: Harness) -> None:
    """While the finished task's entry is still in the stream, its slot is not free yet."""
    await h.submit({f"t{i}": sh() for i in range(3)})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.report("t0", drop=False) == (1, 0, 0)
    assert await h.state("t1") == "ready"


# -- failure --------------------------------------------------------------------------------


async def test_failure_cascades_to_descendants_only(h: Harness, sparse: bool) -> None:
    nodes = {
        "a": sh(),
        "b": sh(after=["a"]),
        "c": sh(after=["b"]),
        "d": sh(after=["c"]),
        "x": sh(),  # independent branch
        "y": sh(after=["x"]),
        "j": sh(after=["b", "y"]),  # join of both branches
    }
    await h.submit(nodes, sparse=sparse)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a")
    await h.finish("b", "failed", exit_code=2, reason="exit code 2")
    states = await h.check()
    assert states["b"] == "failed"
    assert (states["c"], states["d"], states["j"]) == ("upstream_failed",) * 3
    assert states["x"] == "dispatched"
    c = await h.task("c")
    assert c["reason"] == "upstream b did not succeed"
    assert (await h.task("d"))["reason"] == "upstream c did not succeed"
    b = await h.task("b")
    assert (b["reason"], b["exit_code"], b["fails"]) == ("exit code 2", "2", "1")
    assert (await h.run())["state"] == "running"
    # the independent branch still runs
    await h.finish("x")
    assert await h.state("y") == "dispatched"
    await h.finish("y")
    assert await h.state("j") == "upstream_failed"  # not released by y
    run = await h.run()
    assert run["state"] == "failed"
    assert (run["n_succeeded"], run["n_failed"], run["n_upstream_failed"]) == ("3", "1", "3")
    await h.check()


async def test_join_fails_early_and_a_late_parent_does_not_touch_it(h: Harness) -> None:
    await h.submit(DIAMOND)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("prepare")
    await h.finish("left", "failed")
    assert await h.state("combine") == "upstream_failed"
    assert (await h.run())["remaining"] == "1"  # right is still running
    await h.finish("right")
    t = await h.task("combine")
    assert (t["state"], t["deps_left"]) == ("upstream_failed", "2")
    run = await h.run()
    assert (run["state"], run["remaining"]) == ("failed", "0")
    await h.check()


async def test_long_chain_cascade_is_not_recursive(h: Harness) -> None:
    n = 300
    nodes = {"n0": sh()} | {f"n{i}": sh(after=[f"n{i - 1}"]) for i in range(1, n)}
    await h.submit(nodes)
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("n0", "failed")
    run = await h.run()
    assert (run["state"], run["n_upstream_failed"], run["remaining"]) == ("failed", str(n - 1), "0")


async def test_all_done_child_runs_after_a_failure(h: Harness, sparse: bool) -> None:
    nodes = {
        "a": sh(),
        "b": sh(),
        "cleanup": sh(after=["a", "b"], trigger="all_done"),
        "report": sh(after=["cleanup"]),
        "strict": sh(after=["a"]),
    }
    await h.submit(nodes, sparse=sparse)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await h.state("strict") == "upstream_failed"
    t = await h.task("cleanup")
    assert (t["state"], t["deps_left"]) == ("pending", "1")  # waits for b too
    await h.finish("b")
    assert await h.state("cleanup") == "dispatched"
    await h.finish("cleanup")
    assert await h.state("report") == "dispatched"
    await h.finish("report")
    run = await h.run()
    assert run["state"] == "failed"  # a failed, whatever ran after it
    assert (run["n_succeeded"], run["n_failed"], run["n_upstream_failed"]) == ("3", "1", "1")
    await h.check()


async def test_all_done_grandchild_runs_after_an_upstream_failure(h: Harness) -> None:
    nodes = {"a": sh(), "b": sh(after=["a"]), "final": sh(after=["b"], trigger="all_done")}
    await h.submit(nodes)
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await h.states() == {"a": "failed", "b": "upstream_failed", "final": "dispatched"}
    await h.check()


async def test_all_done_child_waits_for_every_parent(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(), "c": sh(after=["a", "b"], trigger="all_done")})
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await h.state("c") == "pending"
    await h.report("a", "failed", attempt=1)  # duplicate of the failure
    assert (await h.task("c"))["deps_left"] == "1"


async def test_all_success_child_of_a_matrix_waits_on_every_copy(h: Harness) -> None:
    await h.submit({"sim": sh("x {{ v }}", matrix={"v": [1, 2, 3]}), "gather": sh(after=["sim"])})
    await h.capacity("cpu", 10)
    await h.dispatch()
    for i in range(3):
        assert await h.state("gather") == "pending"
        assert (await h.task("gather"))["deps_left"] == str(3 - i)
        await h.finish(f"sim[{i}]")
    assert await h.state("gather") == "dispatched"


async def test_worker_cancelled_task_does_not_release_all_success_children(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"]), "c": sh(after=["a"], trigger="all_done")})
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a", "cancelled", reason="cancelled by user")
    t = await h.task("a")
    assert (t["state"], t["reason"]) == ("cancelled", "cancelled by user")
    assert await h.state("b") == "upstream_failed"
    assert await h.state("c") == "dispatched"
    await h.check()
    await h.finish("c")
    run = await h.run()
    # no task failed, but b never ran: the run failed
    assert (run.get("n_failed", "0"), run["n_upstream_failed"], run["state"]) == (
        "0",
        "1",
        "failed",
    )


async def test_run_with_a_cancelled_task_does_not_succeed(h: Harness) -> None:
    """A task cancelled on its own (runner order) leaves the run short of work: not `succeeded`."""
    await h.submit({"a": sh(), "b": sh()})
    await h.capacity("cpu", 10)
    await h.dispatch()
    await h.finish("a")
    await h.finish("b", "cancelled", reason="cancelled by user")
    run = await h.run()
    assert run["remaining"] == "0"
    assert run["state"] in ("failed", "cancelled")


async def test_counters_survive_a_mix_of_outcomes(h: Harness) -> None:
    nodes = {f"t{i}": sh(retries=1, retry_backoff=0) for i in range(6)}
    await h.submit(nodes)
    await h.capacity("cpu", 10)
    await h.dispatch()
    for node, outcome in zip(
        nodes, ["succeeded", "failed", "lost", "handed_back", "cancelled", "failed"], strict=True
    ):
        await h.finish(node, outcome)
        await h.check()


# -- acknowledgement ------------------------------------------------------------------------


async def test_complete_acks_and_deletes_the_done_entries(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh()})
    await h.capacity("cpu", 10)
    await h.dispatch()
    done = h.keys.done()
    await create_group(h.rds, done, BROKER_GROUP)
    for node in ("a", "b"):
        assert await h.start(node)
        await h.drop(node)
        c = Completion(run="r1", node=node, attempt=1, outcome=Outcome.SUCCEEDED, runner="w1")
        await h.rds.xadd(done, c.to_fields())
    read = await h.rds.xreadgroup(BROKER_GROUP, "b1", {done: ">"})
    entries = read[0][1]
    ids = [mid for mid, _ in entries]
    completions = [[f[k] for k in COMPLETION_FIELDS] for _, f in entries]
    result = await h.scripts.complete(
        completions, max_lost=3, ack_stream=done, ack_group=BROKER_GROUP, ack_ids=ids, now=NOW
    )
    assert result == (2, 0, 0)
    assert await h.rds.xlen(done) == 0
    assert (await h.rds.xpending(done, BROKER_GROUP))["pending"] == 0
    assert (await h.run())["state"] == "succeeded"
    # replaying the same entries (a broker died before EXEC and another claimed them) is harmless
    result = await h.scripts.complete(
        completions, max_lost=3, ack_stream=done, ack_group=BROKER_GROUP, ack_ids=ids, now=NOW
    )
    assert result == (0, 2, 0)
    await h.check()


async def test_ack_with_nothing_applied(h: Harness) -> None:
    done = h.keys.done()
    await create_group(h.rds, done, BROKER_GROUP)
    await h.rds.xadd(done, {"run": "x"})
    ((mid, _),) = (await h.rds.xreadgroup(BROKER_GROUP, "b1", {done: ">"}))[0][1]
    assert await h.scripts.complete(
        [], max_lost=3, ack_stream=done, ack_group=BROKER_GROUP, ack_ids=[mid]
    ) == (0, 0, 0)
    assert await h.rds.xlen(done) == 0
