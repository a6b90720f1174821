"""Orders through the control stream: cancel one task, drain or shut the runner down."""

from __future__ import annotations

import asyncio

from helpers import wait_until
from test_worker_support import (  # noqa: F401
    WorkerHarness,
    file_exists,
    process_gone,
    read_text,
    wk_fixture,
)

from broker.wire import Outcome


async def test_cancel_kills_the_task_and_reports_cancelled(wk: WorkerHarness) -> None:
    pidfile = wk.tmp / "child.pid"
    settings = await wk.start()
    await wk.push("long", command=f"sleep 30 & echo $! > {pidfile}; wait")
    await wk.push("other", command="sleep 0.3")
    await wk.wait_state("long", "running")
    await wait_until(file_exists(pidfile), 5.0, what="the pid file")
    ctl = wk.keys.control(settings.runner_id)
    await wk.rds.xadd(ctl, {"op": "cancel", "run": "r1", "node": "long"})
    c = await wk.completion("long")
    assert (c.outcome, c.reason) == (Outcome.CANCELLED, "cancelled")
    pid = int(read_text(pidfile))
    await wait_until(process_gone(pid), 5.0, what="child killed")
    other = await wk.completion("other")  # the rest of the worker is untouched
    assert other.outcome is Outcome.SUCCEEDED
    # unknown ops and tasks not held here are ignored
    await wk.rds.xadd(ctl, {"op": "cancel", "run": "r1", "node": "x"})
    await wk.rds.xadd(ctl, {"op": "dance"})
    await wk.push("after", command="true")
    assert (await wk.completion("after")).outcome is Outcome.SUCCEEDED


async def test_drain_order_finishes_running_work_then_exits(wk: WorkerHarness) -> None:
    settings = await wk.start(grace_period_s=10.0)
    rid = settings.runner_id
    await wk.push("busy", command="sleep 0.5")
    await wk.wait_state("busy", "running")
    await wk.rds.xadd(wk.keys.control(rid), {"op": "drain"})

    async def draining() -> bool:
        return await wk.rds.hget(wk.keys.runner(rid), "state") == "draining"

    await wait_until(draining, 5.0, what="state draining")
    await wk.push("late", command="true")  # not taken: the runner stopped reading
    code = await asyncio.wait_for(wk.runs[0][0], 10)
    wk.runs.clear()
    assert code == 0
    assert [c.node for c in await wk.done()] == ["busy"]
    assert (await wk.done())[0].outcome is Outcome.SUCCEEDED
    k = wk.keys
    assert not await wk.rds.exists(k.runner(rid), k.heartbeat(rid), k.control(rid))
    assert not await wk.rds.sismember(wk.keys.runners(), rid)
    assert await wk.rds.xlen(wk.keys.queue("cpu")) == 1 and await wk.pending() == 0


async def test_shutdown_order_hands_back_what_overruns_the_grace(wk: WorkerHarness) -> None:
    settings = await wk.start(grace_period_s=0.3)
    await wk.push("forever", command="sleep 30")
    await wk.wait_state("forever", "running")
    await wk.rds.xadd(wk.keys.control(settings.runner_id), {"op": "shutdown"})
    assert await asyncio.wait_for(wk.runs[0][0], 10) == 0
    wk.runs.clear()
    c = await wk.completion("forever")
    assert (c.outcome, c.reason) == (Outcome.HANDED_BACK, "runner shutting down")
