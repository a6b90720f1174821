"""Resource fit: a ready task bigger than every live runner of its class is parked, not sent.

Real Redis, real Lua, the real RunnerWatch.scan: runners are registered the way a worker
writes them (runner hash with `cores`, `memory_mb`, `gpus` + heartbeat key), or without the
size fields, as an older worker does.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_lua_support import NOW, Harness, harness_fixture, sh  # noqa: F401

from broker.engine.groups import ensure_group
from broker.engine.queue_report import queue_report
from broker.engine.runners import RunnerWatch
from broker.keys import WORKER_GROUP


@pytest.fixture(name="watch")
def watch_fixture(h: Harness) -> RunnerWatch:
    return RunnerWatch(h.rds, h.keys, h.scripts, "b1", max_lost=3, lease_ms=60_000)


async def add_runner(
    h: Harness, rid: str, *, classes: str = "cpu", slots: int = 4, **size: Any
) -> None:
    """Register a live runner as a worker does (with its consumer groups); `size` = cores,
    memory_mb, gpus."""
    fields: dict[str, Any] = {"host": "h", "pid": 1, "classes": classes, "slots": slots,
                              "busy": 0, "executors": "shell,python,noop", "state": "active",
                              "labels": "{}", "started_at": NOW}
    fields.update({k: str(v) for k, v in size.items()})
    await h.rds.hset(h.keys.runner(rid), mapping=fields)
    await h.rds.sadd(h.keys.runners(), rid)
    await h.rds.set(h.keys.heartbeat(rid), 1, ex=60)
    for c in classes.split(","):
        await ensure_group(h.rds, h.keys.queue(c), WORKER_GROUP)


async def kill_runner(h: Harness, rid: str) -> None:
    """The runner stops heartbeating (the next scan forgets it)."""
    await h.rds.delete(h.keys.heartbeat(rid))


async def parked(h: Harness, rclass: str = "cpu") -> list[str]:
    return [m.split(":", 1)[1] for m in await h.rds.zrange(h.keys.unfit(rclass), 0, -1)]


async def test_big_task_is_parked_and_smaller_ones_behind_it_go(
    h: Harness, watch: RunnerWatch
) -> None:
    await add_runner(h, "small", cores=4, memory_mb=16384, gpus=0)
    await h.submit({"big": sh(priority=10, resources={"cores": 8}), "s1": sh(), "s2": sh()})
    score = await h.rds.zscore(h.keys.ready("cpu"), "r1:big")
    await watch.scan()
    assert await h.queued() == ["s1", "s2"]  # no head-of-line blocking
    assert await parked(h) == ["big"]
    assert await h.rds.zscore(h.keys.unfit("cpu"), "r1:big") == score  # keeps its place
    assert await h.state("big") == "ready"  # readers of task state see no change
    assert not [e for e in await h.events() if e.get("node") == "big" and e["state"] != "ready"]
    assert await h.ready() == []
    await h.check()
    # more dispatches (ticks) never re-pop it or send it
    await h.drop("s1")
    assert await h.dispatch() == 0
    assert await parked(h) == ["big"]
    # an 8-core runner registers: one scan moves it back and dispatches it
    await add_runner(h, "large", cores=8, memory_mb=16384, gpus=0)
    await watch.scan()
    assert await parked(h) == []
    assert await h.queued() == ["s2", "big"]
    assert await h.state("big") == "dispatched"
    await h.check()


async def test_unparked_tasks_keep_priority_and_fifo_order(
    h: Harness, watch: RunnerWatch
) -> None:
    await add_runner(h, "small", slots=1, cores=2)
    big = {"cores": 4}
    await h.submit({"b_low": sh(priority=-1, resources=big), "b1": sh(resources=big),
                    "b2": sh(resources=big), "b_high": sh(priority=9, resources=big)})
    await watch.scan()
    assert sorted(await parked(h)) == ["b1", "b2", "b_high", "b_low"]
    await kill_runner(h, "small")
    await add_runner(h, "large", slots=1, cores=4)
    order = []
    await watch.scan()
    for _ in range(4):
        (msg,) = await h.queue()
        order.append(msg.node)
        await h.drop(msg.node)
        await h.dispatch()
    assert order == ["b_high", "b1", "b2", "b_low"]


async def test_memory_is_checked(h: Harness, watch: RunnerWatch) -> None:
    await add_runner(h, "w4g", cores=16, memory_mb=4096, gpus=0)
    await h.submit({"m8": sh(resources={"memory": "8G"}), "m2": sh(resources={"memory": "2G"})})
    await watch.scan()
    assert await h.queued() == ["m2"]
    assert await parked(h) == ["m8"]
    report = (await queue_report(h.rds, h.keys))["cpu"]
    assert report["parked"] == 1
    assert report["unfit"] == [{
        "tasks": 1, "needs": {"memory_mb": 8192},
        "reason": "needs 8 GiB of memory; the largest live runner of class 'cpu' offers 4 GiB",
    }]
    await add_runner(h, "w16g", cores=16, memory_mb=16384, gpus=0)
    await watch.scan()
    assert await h.queued() == ["m2", "m8"]
    await h.check()


async def test_gpus_are_checked(h: Harness, watch: RunnerWatch) -> None:
    await add_runner(h, "g1", classes="gpu", cores=8, memory_mb=8192, gpus=1)
    await h.submit({"two": sh(resources={"gpus": 2}), "one": sh(resources={"gpus": 1})})
    await watch.scan()
    assert await h.queued("gpu") == ["one"]
    assert await parked(h, "gpu") == ["two"]
    (entry,) = (await queue_report(h.rds, h.keys))["gpu"]["unfit"]
    assert entry["needs"] == {"gpus": 2}
    assert entry["reason"] == "needs 2 GPUs; the largest live runner of class 'gpu' offers 1 GPU"
    await add_runner(h, "g2", classes="gpu", cores=8, memory_mb=8192, gpus=2)
    await watch.scan()
    assert await h.queued("gpu") == ["one", "two"]
    await h.check()


async def test_runner_without_size_fields_fits_anything(
    h: Harness, watch: RunnerWatch
) -> None:
    await add_runner(h, "old")  # an older worker: no cores / memory_mb / gpus
    await h.submit({"huge": sh(resources={"cores": 64, "memory": "32G"})})
    await watch.scan()
    assert await h.queued() == ["huge"]
    assert not await h.rds.exists(h.keys.fit("cpu"))
    # next to a sized runner, the old one still counts as "fits anything"
    await add_runner(h, "new", cores=2, memory_mb=1024, gpus=0)
    await h.submit({"huge2": sh(resources={"cores": 64})}, run="r2")
    await watch.scan()
    assert await parked(h) == []
    assert "huge2" in await h.queued()


async def test_no_single_runner_has_everything_a_task_needs(
    h: Harness, watch: RunnerWatch
) -> None:
    """8 cores exist, and 32 GiB exist, but not on one runner: the task cannot run anywhere."""
    await add_runner(h, "wide", cores=8, memory_mb=4096, gpus=0)
    await add_runner(h, "deep", cores=2, memory_mb=32768, gpus=0)
    await h.submit({"both": sh(resources={"cores": 8, "memory": "16G"}),
                    "cpu8": sh(resources={"cores": 8}), "mem16": sh(resources={"memory": "16G"})})
    await watch.scan()
    assert sorted(await h.queued()) == ["cpu8", "mem16"]
    assert await parked(h) == ["both"]
    (entry,) = (await queue_report(h.rds, h.keys))["cpu"]["unfit"]
    assert entry["reason"].startswith("needs 8 cores and 16 GiB of memory on one runner;")
    await add_runner(h, "big", cores=8, memory_mb=16384, gpus=0)
    await watch.scan()
    assert await parked(h) == [] and "both" in await h.queued()


async def test_fit_disappearing_puts_parked_tasks_back(h: Harness, watch: RunnerWatch) -> None:
    await add_runner(h, "small", cores=2)
    await h.submit({"big": sh(resources={"cores": 8})})
    await watch.scan()
    assert await parked(h) == ["big"]
    await kill_runner(h, "small")
    await watch.scan()  # no live runner: no fit info; the task waits in the ready set
    assert not await h.rds.exists(h.keys.fit("cpu"))
    assert await parked(h) == []
    assert [m for m, _ in await h.ready()] == ["r1:big"]
    report = (await queue_report(h.rds, h.keys))["cpu"]
    assert report["unfit"] == [{"tasks": 1, "reason": "no live runner serves class 'cpu'"}]
    await h.check()


async def test_shrinking_fit_does_not_unpark(h: Harness, watch: RunnerWatch) -> None:
    """Only a grown offer moves parked tasks back (a smaller one would only re-park them)."""
    await add_runner(h, "w4", slots=1, cores=4)
    await add_runner(h, "w6", slots=1, cores=6)
    await h.submit({"big": sh(resources={"cores": 8}), "s1": sh(), "s2": sh()})
    await watch.scan()
    assert await parked(h) == ["big"] and await h.queued() == ["s1", "s2"]
    await kill_runner(h, "w6")
    await watch.scan()  # the stream is full: a task moved back would stay in the ready set
    assert await h.rds.hget(h.keys.fit("cpu"), "cores") == "4"
    assert await h.ready() == []
    assert await parked(h) == ["big"]


async def test_cancel_run_removes_parked_tasks(h: Harness, watch: RunnerWatch) -> None:
    await add_runner(h, "small", cores=2)
    await h.submit({"big": sh(resources={"cores": 8}), "after": sh(after=["big"])})
    await h.submit({"big": sh(resources={"cores": 8})}, run="r2")
    await watch.scan()
    assert sorted(await h.rds.zrange(h.keys.unfit("cpu"), 0, -1)) == ["r1:big", "r2:big"]
    assert await h.scripts.cancel_run("r1", "stop", now=NOW) == []
    assert await h.rds.zrange(h.keys.unfit("cpu"), 0, -1) == ["r2:big"]
    assert await h.state("big") == "cancelled"
    await h.check()
    # a bigger runner arrives: the cancelled task is never dispatched, the other one is
    await add_runner(h, "large", cores=8)
    await watch.scan()
    assert [(m.run, m.node) for m in await h.queue()] == [("r2", "big")]
    assert await h.state("big") == "cancelled"
    await h.check()


async def test_clear_queue_cancels_parked_tasks(h: Harness, watch: RunnerWatch) -> None:
    await add_runner(h, "small", slots=1, cores=2)
    await h.submit({"big": sh(resources={"cores": 8}), "s1": sh(), "s2": sh()})
    await watch.scan()
    assert await parked(h) == ["big"] and await h.queued() == ["s1"]
    assert await h.scripts.clear_queue("cpu", "cleared", now=NOW) == 2  # s2 and the parked one
    assert await parked(h) == [] and await h.ready() == []
    assert (await h.states())["big"] == "cancelled"
    await h.check()


async def test_lost_big_task_is_parked_when_its_runner_is_gone(
    h: Harness, watch: RunnerWatch
) -> None:
    """The only big runner dies holding the task: requeued as lost, then parked, not re-sent."""
    await add_runner(h, "small", cores=2)
    await add_runner(h, "large", cores=8)
    await h.submit({"big": sh(resources={"cores": 8})})
    await watch.scan()
    assert await h.queued() == ["big"]
    await h.rds.xreadgroup(WORKER_GROUP, "large", {h.keys.queue("cpu"): ">"})
    await h.start("big", runner="large")
    await kill_runner(h, "large")
    await watch.scan()  # forgets `large` (fit shrinks), then reports its task lost
    assert await h.state("big") == "ready"
    assert (await h.task("big"))["attempt"] == "2"
    assert await parked(h) == ["big"] and await h.queued() == []
    await h.check()


async def test_remote_executor_tasks_are_not_limited_by_the_runner_size(
    h: Harness, watch: RunnerWatch
) -> None:
    """A SLURM task's cores are the cluster's: a small login-node runner still takes it."""
    await add_runner(h, "login", classes="slurm", cores=2, memory_mb=2048, gpus=0)
    await h.submit({"sim": {"executor": "slurm", "command": "srun sim",
                            "resources": {"cores": 64, "memory": "256G", "gpus": 4}}})
    await watch.scan()
    assert await parked(h, "slurm") == []
    assert await h.queued("slurm") == ["sim"]
    await h.check()


async def test_a_dispatch_racing_the_scan_never_sends_an_unfit_task(
    h: Harness, watch: RunnerWatch
) -> None:
    """Another broker (or the execute request) may dispatch at any moment of a scan, between
    its writes: at no such moment may it see the new runner's room without its fit."""
    await h.submit({"big": sh(resources={"cores": 8})})
    await add_runner(h, "small", cores=2)  # the first runner of the class appears
    real_refit = h.scripts.refit
    seen: list[list[str]] = []

    async def refit_raced(args: Any) -> Any:
        await h.scripts.dispatch(["cpu"])  # just before the fit is written
        seen.append(await h.queued())
        out = await real_refit(args)
        await h.scripts.dispatch(["cpu"])  # just after it
        seen.append(await h.queued())
        return out

    h.scripts.refit = refit_raced  # type: ignore[method-assign]
    try:
        await watch.scan()
    finally:
        h.scripts.refit = real_refit  # type: ignore[method-assign]
    assert seen == [[], []]
    assert await h.queued() == [] and await parked(h) == ["big"]
    await h.check()
