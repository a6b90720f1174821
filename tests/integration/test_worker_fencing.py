"""Fencing: a worker that lost its lease stops its own copy of the task (worker/fencing.py).

The test plays the broker's reaper with the real code (RunnerWatch, complete.lua), runs real
shell tasks, and cuts a worker off Redis with a TCP proxy (the shared redis-server keeps
running). "Two copies never run" is checked on the task's process: it is gone before the
broker could hand the task to anyone else, and the worker keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from tcp_proxy import TcpProxy
from test_worker_support import WorkerHarness, pid_alive, process_gone, wk_fixture  # noqa: F401

from broker.engine.completions import completion_args
from broker.engine.runners import RunnerWatch, lost_completion
from broker.engine.scripts import Scripts
from broker.keys import WORKER_GROUP
from broker.wire import Outcome, TaskMessage
from worker.batchrun import run_batch
from worker.fencing import RECLAIMED, Fence, ids_by_stream
from worker.handle import TaskHandle
from worker.heartbeat import send_heartbeat
from worker.registry import RunnerStatus
from worker.service import Worker


async def read_pid(path: Path) -> int:
    async def written() -> int | None:
        text = path.read_text() if path.exists() else ""
        return int(text) if text.endswith("\n") else None

    return await wait_until(written, 15.0, what=f"the task to write its pid to {path}")


def long_task(pid_file: Path, ignore_term: bool = False) -> str:
    """A task that runs until killed; with ignore_term only SIGKILL ends it."""
    trap = "trap '' TERM; " if ignore_term else ""
    return f"{trap}echo $$ > {pid_file}; while :; do sleep 0.05; done"


async def push_task(wk: WorkerHarness, node: str, command: str) -> str:
    """Dispatch a task the broker can re-queue (make_ready reads its priority)."""
    entry_id = await wk.push(node, command=command)
    await wk.rds.hset(wk.keys.task("r1", node), "priority", 0)
    return entry_id


async def apply_done(wk: WorkerHarness, node: str) -> tuple[int, int]:
    """Apply the worker's report of `node` as the broker would → (applied, ignored)."""
    entries = await wk.rds.xrange(wk.keys.done())
    comps = [completion_args(f) for _, f in entries if f["node"] == node]
    applied, ignored, _ = await Scripts(wk.rds, wk.keys.prefix).complete(comps, max_lost=3)
    return applied, ignored


async def _at_least(value: Callable[[], Awaitable[int]], least: int) -> bool:
    return await value() >= least


async def still_serves(wk: WorkerHarness, node: str) -> None:
    out = wk.tmp / f"{node}.out"
    await wk.push(node, command=f"echo ok > {out}", run="r2")
    assert (await wk.completion(node)).outcome is Outcome.SUCCEEDED
    assert out.read_text() == "ok\n"


# -- renew_leases.lua ---------------------------------------------------------------------------


async def test_renew_renews_own_entries_and_never_steals_from_the_reaper(wk: WorkerHarness) -> None:
    q = wk.keys.queue("cpu")
    await wk.rds.xgroup_create(q, WORKER_GROUP, id="0", mkstream=True)
    for node in ("mine", "claimed", "reported"):
        await wk.push(node, command="true")
    reply = await wk.rds.xreadgroup(WORKER_GROUP, "w1", {q: ">"}, count=3)
    mine, claimed, reported = [msg_id for msg_id, _ in reply[0][1]]
    await wk.rds.xclaim(q, WORKER_GROUP, "reaper-b1", 0, [claimed])  # claimed, not yet reported
    await wk.rds.xack(q, WORKER_GROUP, reported)  # reaper reported it: acked + deleted
    await wk.rds.xdel(q, reported)
    async def idle_ms() -> int:
        [p] = await wk.rds.xpending_range(q, WORKER_GROUP, mine, mine, 1)
        return int(p["time_since_delivered"])

    await wait_until(lambda: _at_least(idle_ms, 60), 5.0, what="the entry to idle")
    scripts = Scripts(wk.rds, wk.keys.prefix)
    lost = await scripts.renew_leases("w1", {q: [mine, claimed, reported]})
    assert lost == {(q, claimed), (q, reported)}
    rows = await wk.rds.xpending_range(q, WORKER_GROUP, "-", "+", 10)
    pending = {p["message_id"]: p for p in rows}
    assert set(pending) == {mine, claimed}
    assert pending[claimed]["consumer"] == "reaper-b1"  # not stolen back
    assert pending[mine]["consumer"] == "w1" and pending[mine]["time_since_delivered"] < 60
    assert pending[mine]["times_delivered"] == 1  # JUSTID: a renewal is not a delivery
    # a stream (or group) deleted by hand: nothing to renew, nothing reported lost
    assert await scripts.renew_leases("w1", {wk.keys.queue("nope"): ["1-0"]}) == set()


# -- 1. the broker took the entry back -------------------------------------------------------


async def test_a_task_reclaimed_by_lease_is_stopped_and_the_worker_serves_on(
    wk: WorkerHarness,
) -> None:
    settings = await wk.start(heartbeat_interval_s=0.2)
    pid_file = wk.tmp / "long.pid"
    await push_task(wk, "long", long_task(pid_file))
    pid = await read_pid(pid_file)
    await wk.wait_state("long", "running")
    scripts = Scripts(wk.rds, wk.keys.prefix)
    reaper = RunnerWatch(wk.rds, wk.keys, scripts, "b1", max_lost=3, lease_ms=1)

    async def reclaimed() -> bool:  # the broker's lease scan, with a lease of 1 ms
        await reaper.reclaim_expired_leases({"cpu"})
        return await wk.rds.hget(wk.keys.task("r1", "long"), "attempt") == "2"

    await wait_until(reclaimed, 10.0, what="the reaper to reclaim the entry")
    await wait_until(process_gone(pid), 10.0, what="the old copy to be stopped")
    c = await wk.completion("long")
    assert (c.outcome, c.attempt, c.reason, c.runner) == (
        Outcome.LOST, 1, RECLAIMED, settings.runner_id)
    assert await apply_done(wk, "long") == (0, 1)  # stale attempt: counted once, by the reaper
    assert await wk.rds.hget(wk.keys.task("r1", "long"), "lost") == "1"
    assert not wk.runs[0][0].done()
    await still_serves(wk, "next")


async def test_an_entry_claimed_by_the_reaper_is_not_stolen_back(wk: WorkerHarness) -> None:
    """Between the reaper's XCLAIM and its report, the worker must not renew the entry.

    (A plain XCLAIM with min-idle 0 would take it back and the task would run on.)
    """
    settings = await wk.start(heartbeat_interval_s=0.2)
    pid_file = wk.tmp / "long.pid"
    entry_id = await push_task(wk, "long", long_task(pid_file))
    pid = await read_pid(pid_file)
    await wk.wait_state("long", "running")
    q = wk.keys.queue("cpu")
    [(_, fields)] = await wk.rds.xclaim(q, WORKER_GROUP, "reaper-b1", 0, [entry_id])
    await wait_until(process_gone(pid), 10.0, what="the old copy to be stopped")
    assert (await wk.completion("long")).outcome is Outcome.LOST  # its report acks the entry
    # the reaper goes on: reports it lost (re-queued as attempt 2) and acknowledges it
    scripts = Scripts(wk.rds, wk.keys.prefix)
    applied, _, _ = await scripts.complete(
        [lost_completion(fields, settings.runner_id, "lease expired")], max_lost=3,
        ack_stream=q, ack_group=WORKER_GROUP, ack_ids=[entry_id])
    assert applied == 1
    assert await apply_done(wk, "long") == (0, 1)
    assert await wk.rds.hget(wk.keys.task("r1", "long"), "lost") == "1"
    await still_serves(wk, "next")


# -- 2. cut off from Redis ----------------------------------------------------------------------


@pytest.fixture
async def proxy(redis_server: Any) -> AsyncIterator[TcpProxy]:
    p = await TcpProxy(redis_server.port).start()
    yield p
    await p.close()


async def test_a_worker_cut_off_kills_its_tasks_before_the_heartbeat_expires(
    wk: WorkerHarness, proxy: TcpProxy
) -> None:
    settings = await wk.start(redis_url=proxy.url, heartbeat_interval_s=0.2,
                              heartbeat_ttl_s=3.0, kill_grace_s=0.5)
    hb = wk.keys.heartbeat(settings.runner_id)
    pid_file = wk.tmp / "stubborn.pid"
    await push_task(wk, "stubborn", long_task(pid_file, ignore_term=True))  # needs SIGKILL
    pid = await read_pid(pid_file)
    await wk.wait_state("stubborn", "running")
    await proxy.cut()
    await wait_until(process_gone(pid), 10.0, what="the cut-off worker to kill its task")
    # gone while the heartbeat key still lives: the broker could not have reclaimed it yet
    assert await wk.rds.pttl(hb) > 0
    assert not wk.runs[0][0].done()

    await proxy.restore()  # before the broker noticed: the fenced task is reported lost
    c = await wk.completion("stubborn", timeout_s=20.0)
    assert c.outcome is Outcome.LOST and c.reason.startswith("lease lost: no heartbeat for ")
    assert await apply_done(wk, "stubborn") == (1, 0)  # not lost: re-queued as attempt 2
    assert await wk.rds.hget(wk.keys.task("r1", "stubborn"), "attempt") == "2"
    await still_serves(wk, "next")
    assert await wk.rds.pttl(hb) > 0


async def test_after_the_broker_reclaimed_a_cut_off_runner_it_registers_again(
    wk: WorkerHarness, proxy: TcpProxy
) -> None:
    settings = await wk.start(redis_url=proxy.url, heartbeat_interval_s=0.2,
                              heartbeat_ttl_s=2.0, kill_grace_s=0.3)
    rid = settings.runner_id
    pid_file = wk.tmp / "long.pid"
    await push_task(wk, "long", long_task(pid_file))
    pid = await read_pid(pid_file)
    await wk.wait_state("long", "running")
    await proxy.cut()
    await wait_until(process_gone(pid), 10.0, what="the cut-off worker to kill its task")

    async def expired() -> bool:
        return not await wk.rds.exists(wk.keys.heartbeat(rid))

    await wait_until(expired, 10.0, what="the heartbeat key to expire")
    scripts = Scripts(wk.rds, wk.keys.prefix)
    reaper = RunnerWatch(wk.rds, wk.keys, scripts, "b1", max_lost=3, lease_ms=60_000)
    await reaper.reclaim_runner(rid, {"cpu"})  # the broker's scan of a dead runner
    assert not await wk.rds.sismember(wk.keys.runners(), rid)

    await proxy.restore()

    async def registered() -> bool:
        return bool(await wk.rds.sismember(wk.keys.runners(), rid))

    await wait_until(registered, 10.0, what="the runner to register again")
    assert (await wk.completion("long", timeout_s=20.0)).outcome is Outcome.LOST
    assert await apply_done(wk, "long") == (0, 1)  # the reaper's report counted, not this one
    await still_serves(wk, "next")


# -- 3. a heartbeat racing a normal completion --------------------------------------------------


async def read_handle(wk: WorkerHarness, rid: str, node: str) -> TaskHandle:
    q = wk.keys.queue("cpu")
    await wk.push(node, "noop")
    [(_, [(msg_id, fields)])] = await wk.rds.xreadgroup(WORKER_GROUP, rid, {q: ">"}, count=1)
    return TaskHandle(TaskMessage.from_fields(q, msg_id, fields))


async def test_a_heartbeat_racing_a_completion_does_not_fence_the_finished_task(
    wk: WorkerHarness,
) -> None:
    """Ids taken → the task completes and acks → renew reports the id gone → not a loss."""
    settings = wk.settings()
    worker = Worker(settings, wk.rds, base_env={})
    try:
        await worker.start()
        finished = await read_handle(wk, settings.runner_id, "finished")
        taken_back = await read_handle(wk, settings.runner_id, "taken")
        worker.inflight.add([finished, taken_back])
        taken = worker.inflight.handles()  # what the heartbeat sends
        await run_batch([finished], worker.ctx, worker.scripts)  # reports and acks it
        q = wk.keys.queue("cpu")
        await wk.rds.xclaim(q, WORKER_GROUP, "reaper-b1", 0, [taken_back.msg.msg_id])
        lost = await send_heartbeat(wk.rds, wk.keys, settings, [], RunnerStatus(),
                                    ids_by_stream(taken), worker.scripts)
        assert lost == {finished.key, taken_back.key}  # the race is real
        assert worker.fence.drop_lost(taken, lost) == 1
        assert finished.stop_outcome is None
        assert (taken_back.stop_outcome, taken_back.stop_reason) == (Outcome.LOST, RECLAIMED)
        [c] = await wk.done()
        assert (c.node, c.outcome) == ("finished", Outcome.SUCCEEDED)
    finally:
        await worker.artifacts.aclose()


# -- the deadline -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_the_fence_goes_up_at_the_deadline_and_down_on_a_heartbeat(
    wk: WorkerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(Fence, "now", staticmethod(clock))
    settings = wk.settings(heartbeat_interval_s=2.0, heartbeat_ttl_s=10.0, kill_grace_s=5.0)
    worker = Worker(settings, wk.rds, base_env={})
    await wk.rds.xgroup_create(wk.keys.queue("cpu"), WORKER_GROUP, id="0", mkstream=True)
    try:
        fence = worker.fence
        # key set after t=1000 lives until 1010 at the earliest; the kill takes up to 5 s
        assert fence.after_s == pytest.approx(10.0 - 5.0 - 0.25 - 0.5)
        running = await read_handle(wk, "w1", "a")
        reporting = await read_handle(wk, "w1", "b")
        reporting.mark_reported()
        worker.inflight.add([running, reporting])
        clock.t += fence.after_s - 0.01
        fence.check()
        assert running.stop_outcome is None and not fence.fenced
        clock.t += 0.01
        fence.check()
        assert fence.fenced and running.stop_outcome is Outcome.LOST
        assert running.stop_reason.startswith("lease lost: no heartbeat for 4.")
        assert reporting.stop_outcome is None
        consumer_may_read = asyncio.ensure_future(fence.wait_leased())
        await asyncio.sleep(0)
        assert not consumer_may_read.done()
        sent_at = clock.t
        clock.t += 0.1
        fence.renewed(sent_at)
        assert not fence.fenced
        await consumer_may_read
    finally:
        await worker.artifacts.aclose()

