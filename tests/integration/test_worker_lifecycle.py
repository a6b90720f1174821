"""Registration, heartbeat and lease renewal, slots, stale entries, noop throughput, layering."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import wait_until
from test_worker_support import WorkerHarness, wk_fixture  # noqa: F401

from broker.engine.scripts import Scripts
from broker.keys import WORKER_GROUP
from broker.wire import Outcome, TaskMessage
from worker.batchrun import run_batch
from worker.executors import ExecContext
from worker.handle import TaskHandle
from worker.service import advertised_executors


async def test_registers_before_reading_and_unregisters_at_exit(wk: WorkerHarness) -> None:
    settings = await wk.start(classes=["cpu", "gpu"], slots=3, labels={"site": "lab"})
    rid = settings.runner_id
    info = await wk.rds.hgetall(wk.keys.runner(rid))
    assert info["classes"] == "cpu,gpu" and info["slots"] == "3" and info["busy"] == "0"
    # what this machine can run: shell, python, noop always; slurm/ssh/aws_batch when available
    assert info["executors"] == ",".join(advertised_executors())
    assert info["executors"].startswith("shell,python,noop")
    assert json.loads(info["labels"]) == {"site": "lab"}
    assert info["state"] == "active" and int(info["pid"]) > 0 and int(info["started_at"]) > 0
    assert info["host"] and info["version"]
    assert await wk.rds.sismember(wk.keys.runners(), rid)
    assert 0 < await wk.rds.pttl(wk.keys.heartbeat(rid)) <= 5000
    for c in ("cpu", "gpu"):
        groups = await wk.rds.xinfo_groups(wk.keys.queue(c))
        assert [g["name"] for g in groups] == [WORKER_GROUP]
    assert await wk.stop_all() == [0]
    assert not await wk.rds.exists(wk.keys.runner(rid), wk.keys.heartbeat(rid))
    assert not await wk.rds.sismember(wk.keys.runners(), rid)


async def test_heartbeat_renews_the_lease_of_running_entries(wk: WorkerHarness) -> None:
    settings = await wk.start(heartbeat_interval_s=0.1, heartbeat_ttl_s=1.0, grace_period_s=0.1)
    await wk.push("long", command="sleep 30")
    await wk.wait_state("long", "running")
    q = wk.keys.queue("cpu")
    seen: list[int] = []

    async def renewed() -> bool:
        [p] = await wk.rds.xpending_range(q, WORKER_GROUP, "-", "+", 10)
        assert p["consumer"] == settings.runner_id
        seen.append(p["time_since_delivered"])
        return len(seen) > 1 and seen[-1] < seen[-2]  # idle time went back down

    await wait_until(renewed, 5.0, what="the lease to be renewed")
    assert await wk.rds.hget(wk.keys.runner(settings.runner_id), "busy") == "1"


async def test_never_reads_more_than_its_free_slots(wk: WorkerHarness) -> None:
    settings = await wk.start(classes=["cpu", "gpu"], slots=2)
    for i in range(4):
        await wk.push(f"c{i}", command="sleep 0.2", cls="cpu", batch=f"b{i}")
        await wk.push(f"g{i}", command="sleep 0.2", cls="gpu", batch=f"b{i}")
    peak = 0

    async def all_done() -> bool:
        nonlocal peak
        held = 0
        for c in ("cpu", "gpu"):
            summary = await wk.rds.xpending(wk.keys.queue(c), WORKER_GROUP)
            held += summary["pending"]
        peak = max(peak, held)
        return len(await wk.done()) == 8

    await wait_until(all_done, 10.0, what="8 completions")
    assert 1 <= peak <= settings.slots
    assert {c.outcome for c in await wk.done()} == {Outcome.SUCCEEDED}


@pytest.mark.parametrize("classes", [["gpu"], ["cpu", "gpu"]])
async def test_recovers_when_a_class_stream_is_deleted(
    wk: WorkerHarness, classes: list[str]
) -> None:
    await wk.start(classes=classes)
    await wk.push("a", "noop", cls="gpu")
    await wk.completion("a")
    await wk.rds.delete(wk.keys.queue("gpu"))  # e.g. `queue clear`
    await wk.push("b", "noop", cls="gpu")  # a new stream without the group
    assert (await wk.completion("b")).outcome is Outcome.SUCCEEDED


async def test_stale_entries_are_acked_without_completion(wk: WorkerHarness) -> None:
    params = {"f": str(wk.tmp / "x")}
    await wk.push("gone", command="touch {{ f }}", state="cancelled", params=params)
    await wk.push("old", command="true", attempt=1)
    await wk.rds.hset(wk.keys.task("r1", "old"), "attempt", 2)  # re-dispatched meanwhile
    await wk.start()  # only now: the worker must find both entries already stale
    q = wk.keys.queue("cpu")

    async def consumed() -> bool:
        return await wk.rds.xlen(q) == 0 and await wk.pending() == 0

    await wait_until(consumed, 5.0, what="stale entries acked")
    assert await wk.done() == []
    assert not (wk.tmp / "x").exists()
    assert await wk.task_state("gone") == "cancelled"


async def test_noop_tasks_are_batched_and_fast(wk: WorkerHarness) -> None:
    await wk.start(slots=200)
    await wk.push_many([f"n{i}" for i in range(1000)], "noop", batch="noop:cpu:x")
    got = await wk.wait_done(1000, timeout_s=20)
    assert {c.outcome for c in got} == {Outcome.SUCCEEDED}
    assert len({c.node for c in got}) == 1000
    assert await wk.rds.xlen(wk.keys.queue("cpu")) == 0
    assert await wk.task_state("n0") == "dispatched"  # noop skips Scripts.start


async def test_stopped_before_start_is_handed_back_without_running(wk: WorkerHarness) -> None:
    marker = wk.tmp / "ran"
    q = wk.keys.queue("cpu")
    await wk.rds.xgroup_create(q, WORKER_GROUP, id="0", mkstream=True)
    entry_id = await wk.push("t", command=f"touch {marker}")
    [(_, [(msg_id, fields)])] = await wk.rds.xreadgroup(WORKER_GROUP, "me", {q: ">"}, count=1)
    assert msg_id == entry_id
    handle = TaskHandle(TaskMessage.from_fields(q, msg_id, fields))
    handle.request_stop(Outcome.HANDED_BACK, "runner shutting down")
    ctx = ExecContext(runner_id="me", redis=wk.rds, keys=wk.keys, data_dir=wk.tmp,
                      kill_grace_s=1.0, base_env={})
    await run_batch([handle], ctx, Scripts(wk.rds, wk.keys.prefix))
    [c] = await wk.done()
    assert (c.outcome, c.node, c.reason) == (Outcome.HANDED_BACK, "t", "runner shutting down")
    assert await wk.task_state("t") == "dispatched"  # never marked running
    assert not marker.exists()
    assert await wk.pending() == 0


def test_worker_imports_no_server_libraries() -> None:
    code = (
        "import sys, worker.main, worker.executors, worker.pyrun\n"
        "bad = [m for m in ('aiohttp', 'aiosqlite', 'dulwich') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
