"""A worker starts only the tasks that fit its free cores, memory and GPUs (real shell tasks).

Tasks write their start and end times (ns) into files; the tests compare those intervals
(overlap or not, order), never durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from test_worker_support import WorkerHarness, file_exists, read_text, wk_fixture  # noqa: F401

from broker.engine.queue_report import live_runners
from broker.keys import WORKER_GROUP
from broker.wire import Outcome


def timed(tmp: Path, node: str, body: str = "sleep 0.3") -> str:
    return f"date +%s%N > {tmp}/{node}.start; {body}; date +%s%N > {tmp}/{node}.end"


def meet(tmp: Path, node: str, other: str) -> str:
    """Runs only once `other` runs too: it cannot finish unless both run at the same time."""
    return timed(tmp, node, f"touch {tmp}/{node}.here; "
                            f"until [ -e {tmp}/{other}.here ]; do sleep 0.02; done; sleep 0.3")


def interval(tmp: Path, node: str) -> tuple[int, int]:
    return int(read_text(tmp / f"{node}.start")), int(read_text(tmp / f"{node}.end"))


def max_overlap(spans: list[tuple[int, int]]) -> int:
    """The largest number of intervals running at one instant (an end before a start)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


async def succeeded(wk: WorkerHarness, n: int) -> None:
    done = await wk.wait_done(n, timeout_s=30.0)
    assert [c.outcome for c in done] == [Outcome.SUCCEEDED] * n, [c.reason for c in done]


@pytest.mark.parametrize(("offer", "need"), [
    ({"cores": 2}, {"cores": 2}),
    ({"cores": 4, "memory_mb": 1024}, {"memory_mb": 768}),
    ({"cores": 4, "gpus": 1}, {"gpus": 1}),
], ids=["cores", "memory", "gpus"])
async def test_tasks_that_fit_only_one_at_a_time_never_overlap(
    wk: WorkerHarness, offer: dict[str, Any], need: dict[str, Any]
) -> None:
    names = ["t1", "t2", "t3"]
    for i, node in enumerate(names):  # queued before the worker starts: read in one go
        await wk.push(node, command=timed(wk.tmp, node), batch=f"b{i}", **need)
    await wk.start(slots=4, **offer)
    await succeeded(wk, 3)
    assert max_overlap([interval(wk.tmp, n) for n in names]) == 1


async def test_one_core_tasks_run_two_at_once_on_two_cores(wk: WorkerHarness) -> None:
    pairs = [("t1", "t2"), ("t2", "t1"), ("t3", "t4"), ("t4", "t3")]
    for i, (node, other) in enumerate(pairs):
        await wk.push(node, command=meet(wk.tmp, node, other), batch=f"b{i}")
    await wk.start(slots=4, cores=2)
    await succeeded(wk, 4)  # each pair met: two ran at once
    assert max_overlap([interval(wk.tmp, n) for n, _ in pairs]) == 2  # and never three


async def test_a_big_task_is_not_overtaken_by_smaller_ones(wk: WorkerHarness) -> None:
    """Strict FIFO: `small` fits beside `a` but waits behind `big`, which waits for `a`."""
    await wk.push("a", command=timed(wk.tmp, "a", "sleep 1"), batch="b1")
    await wk.push("big", command=timed(wk.tmp, "big", "sleep 0.2"), batch="b2", cores=3)
    await wk.push("small", command=timed(wk.tmp, "small", "sleep 0.1"), batch="b3")
    await wk.start(slots=4, cores=3)
    await succeeded(wk, 3)
    a, big, small = (interval(wk.tmp, n) for n in ("a", "big", "small"))
    assert a[1] <= big[0] and big[1] <= small[0]


async def test_a_task_bigger_than_the_runner_is_handed_back_unstarted(
    wk: WorkerHarness
) -> None:
    await wk.push("huge", command=f"touch {wk.tmp}/huge", cores=8)
    await wk.push("fat", command=f"touch {wk.tmp}/fat", memory_mb=4096)
    await wk.push("gpu", command=f"touch {wk.tmp}/gpu", gpus=2)
    await wk.push("ok", command="true")
    await wk.start(runner_id="small-rid", slots=4, cores=2, memory_mb=1024, gpus=0)
    done = {c.node: c for c in await wk.wait_done(4)}
    assert {n: (c.outcome, c.reason) for n, c in done.items() if n != "ok"} == {
        "huge": (Outcome.HANDED_BACK, "needs 8 cores; runner small-rid offers 2"),
        "fat": (Outcome.HANDED_BACK, "needs 4 GiB memory; runner small-rid offers 1 GiB"),
        "gpu": (Outcome.HANDED_BACK, "needs 2 GPUs; runner small-rid offers 0"),
    }
    assert done["ok"].outcome is Outcome.SUCCEEDED
    assert all(done[n].runner == "small-rid" for n in done)
    for node in ("huge", "fat", "gpu"):
        assert not (wk.tmp / node).exists()
        assert await wk.task_state(node) == "dispatched"  # never marked running
    assert await wk.pending() == 0


async def test_a_waiting_task_is_cancelled_or_handed_back_never_started(
    wk: WorkerHarness
) -> None:
    settings = await wk.start(slots=3, cores=1)
    rid = settings.runner_id
    go = wk.tmp / "go"
    await wk.push("a", command=f"touch {wk.tmp}/a; until [ -e {go} ]; do sleep 0.02; done",
                  batch="b1")
    await wait_until(file_exists(wk.tmp / "a"), 10.0, what="a to start")
    b_id = await wk.push("b", command=f"touch {wk.tmp}/b", batch="b2")
    c_id = await wk.push("c", command=f"touch {wk.tmp}/c", batch="b3")

    async def held(entry: str) -> bool:
        rows = await wk.rds.xpending_range(wk.keys.queue("cpu"), WORKER_GROUP, min="-",
                                           max="+", count=10, consumername=rid)
        return entry in {r["message_id"] for r in rows}

    await wait_until(lambda: held(b_id), 10.0, what="b to be read (and wait for a core)")
    assert not await held(c_id)  # nothing more is read while a task waits

    async def one_running() -> bool:
        got = await wk.rds.hmget(wk.keys.runner(rid), ["busy", "free_cores", "cores"])
        return got == ["1", "0", "1"]  # the waiting task is not counted

    await wait_until(one_running, 10.0, what="the heartbeat to count a, not b")
    await wk.rds.xadd(wk.keys.control(rid), {"op": "cancel", "run": "r1", "node": "b"})
    cancelled = await wk.completion("b")
    assert (cancelled.outcome, cancelled.reason) == (Outcome.CANCELLED, "cancelled")
    await wait_until(lambda: held(c_id), 10.0, what="c to be read once b left the line")
    assert await wk.stop_all() == [0]
    done = {c.node: c for c in await wk.done()}
    assert sorted(done) == ["a", "b", "c"]
    assert (done["c"].outcome, done["c"].reason) == (Outcome.HANDED_BACK, "runner shutting down")
    assert done["a"].outcome is Outcome.HANDED_BACK  # killed after the grace period
    assert not (wk.tmp / "b").exists() and not (wk.tmp / "c").exists()
    assert await wk.task_state("b") == "dispatched" and await wk.task_state("c") == "dispatched"


async def test_runner_hash_shows_offer_and_free_resources(wk: WorkerHarness) -> None:
    settings = await wk.start(cores=2.5, memory_mb=4096, gpus=1, slots=2)
    rid = settings.runner_id
    fields = ("busy", "cores", "memory_mb", "gpus", "free_cores", "free_memory_mb", "free_gpus")

    async def runner_is(*want: str) -> bool:
        return tuple(await wk.rds.hmget(wk.keys.runner(rid), list(fields))) == want

    await wait_until(lambda: runner_is("0", "2.5", "4096", "1", "2.5", "4096", "1"), 10.0,
                     what="the runner hash with its offer")
    go = wk.tmp / "go"
    await wk.push("g", command=f"until [ -e {go} ]; do sleep 0.02; done", cores=1,
                  memory_mb=1024, gpus=1)
    await wait_until(lambda: runner_is("1", "2.5", "4096", "1", "1.5", "3072", "0"), 10.0,
                     what="the heartbeat to count the running task")
    [info] = [r for r in await live_runners(wk.rds, wk.keys) if r["id"] == rid]
    assert {k: info[k] for k in fields} == {
        "busy": 1, "cores": 2.5, "memory_mb": 4096, "gpus": 1, "free_cores": 1.5,
        "free_memory_mb": 3072, "free_gpus": 0,
    }
    go.touch()
    await wk.completion("g")
    await wait_until(lambda: runner_is("0", "2.5", "4096", "1", "2.5", "4096", "1"), 10.0,
                     what="the resources to be free again")
