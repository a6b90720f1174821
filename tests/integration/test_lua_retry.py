"""Retries (complete.lua → dagb:delayed → promote.lua), lost tasks and handed-back tasks."""

from __future__ import annotations

import pytest
from test_lua_support import NOW, Harness, harness_fixture, sh  # noqa: F401

HOUR_MS = 3_600_000


async def delayed(h: Harness) -> list[tuple[str, float]]:
    return await h.rds.zrange(h.keys.delayed(), 0, -1, withscores=True)


async def test_failure_with_retries_waits_with_exponential_backoff(h: Harness) -> None:
    await h.submit({"a": sh(retries=3, retry_backoff=2), "b": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    now = NOW
    for fails, attempt in ((1, 1), (2, 2), (3, 3)):
        assert (await h.task("a"))["attempt"] == str(attempt)
        await h.finish("a", "failed", reason=f"boom {fails}", now=now)
        t = await h.task("a")
        due = now + 2000 * 2 ** (fails - 1)  # 2 s, 4 s, 8 s
        assert (t["state"], t["fails"], t["reason"]) == ("retry_wait", str(fails), f"boom {fails}")
        assert t["due_at"] == str(due)
        assert await delayed(h) == [("r1:a", float(due))]
        assert await h.state("b") == "pending"
        await h.check()
        # not yet due
        assert await h.scripts.promote(now=due - 1) == (0, 0)
        assert await h.state("a") == "retry_wait"
        # due: back to ready with the next attempt number, and dispatched
        assert await h.scripts.promote(now=due) == (1, 1)
        t = await h.task("a")
        assert (t["state"], t["attempt"]) == ("dispatched", str(attempt + 1))
        assert await delayed(h) == []
        (msg,) = await h.queue()
        assert msg.attempt == attempt + 1
        await h.check()
        now = due + 10
    # the 4th attempt fails too: no retries left
    await h.finish("a", "failed", reason="boom 4", now=now)
    t = await h.task("a")
    assert (t["state"], t["fails"], t["reason"]) == ("failed", "4", "boom 4")
    assert await h.state("b") == "upstream_failed"
    assert (await h.run())["state"] == "failed"
    assert await delayed(h) == []
    await h.check()


async def test_retry_then_success_releases_children(h: Harness) -> None:
    await h.submit({"a": sh(retries=1, retry_backoff=0.5), "b": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "failed")
    assert (await h.task("a"))["due_at"] == str(NOW + 500)
    await h.scripts.promote(now=NOW + 500)
    await h.finish("a")
    assert await h.state("b") == "dispatched"
    await h.finish("b")
    run = await h.run()
    assert (run["state"], run["n_succeeded"]) == ("succeeded", "2")
    await h.check()


async def test_default_backoff_is_one_second(h: Harness) -> None:
    await h.submit({"a": sh(retries=1)}, sparse=True)
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await delayed(h) == [("r1:a", float(NOW + 1000))]


async def test_backoff_is_capped_at_one_hour(h: Harness) -> None:
    await h.submit({"a": sh(retries=5, retry_backoff=1000)})  # 1000 s, 2000 s, 4000 s → 3600 s
    await h.capacity("cpu", 1)
    await h.dispatch()
    now = NOW
    for expected in (1_000_000, 2_000_000, HOUR_MS, HOUR_MS):
        await h.finish("a", "failed", now=now)
        assert await delayed(h) == [("r1:a", float(now + expected))]
        await h.scripts.promote(now=now + expected)
        now += expected


async def test_no_retries_fails_at_once(h: Harness) -> None:
    await h.submit({"a": sh()}, sparse=True)
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await h.state("a") == "failed"
    assert await delayed(h) == []


async def test_stale_report_after_promote_is_ignored(h: Harness) -> None:
    await h.submit({"a": sh(retries=1, retry_backoff=0), "b": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "failed")
    await h.scripts.promote(now=NOW)
    # a late success of attempt 1 must not release b
    assert await h.report("a", attempt=1, drop=False) == (0, 1, 0)
    assert await h.state("b") == "pending"
    assert (await h.task("a"))["attempt"] == "2"


async def test_report_during_retry_wait_is_ignored(h: Harness) -> None:
    await h.submit({"a": sh(retries=1, retry_backoff=10)})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "failed")
    assert await h.report("a", attempt=1) == (0, 1, 0)
    assert await h.state("a") == "retry_wait"


async def test_promote_respects_its_limit_and_due_order(h: Harness) -> None:
    await h.submit({f"t{i}": sh(retries=1, retry_backoff=i + 1) for i in range(4)})
    await h.capacity("cpu", 10)
    await h.dispatch()
    for i in range(4):
        await h.finish(f"t{i}", "failed")
    await h.capacity("cpu", 0)
    assert await h.scripts.promote(limit=2, now=NOW + 10_000) == (2, 0)
    assert [m for m, _ in await h.ready()] == ["r1:t0", "r1:t1"]
    assert await h.scripts.promote(limit=10, now=NOW + 10_000) == (2, 0)
    assert len(await h.ready()) == 4
    await h.check()


async def test_promote_skips_a_member_whose_task_moved_on(h: Harness) -> None:
    await h.submit({"a": sh(retries=1, retry_backoff=0)})
    await h.rds.zadd(h.keys.delayed(), {"r1:a": NOW})  # stale member: a is ready, not waiting
    before = await h.task("a")
    assert await h.scripts.promote(now=NOW) == (0, 0)
    assert await h.task("a") == before
    assert await delayed(h) == []


# -- lost -----------------------------------------------------------------------------------


async def test_lost_requeues_with_a_new_attempt_without_using_a_retry(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh(after=["a"])}, sparse=True)  # no retries at all
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.finish("a", "lost", reason="worker w1 died")
    t = await h.task("a")
    assert (t["state"], t["attempt"], t["lost"]) == ("dispatched", "2", "1")
    assert "fails" not in t
    lost_events = [e for e in await h.events() if e.get("state") == "lost"]
    assert lost_events[-1]["reason"] == "worker w1 died"
    await h.check()


@pytest.mark.parametrize("max_lost", [1, 2, 3])
async def test_lost_max_lost_times_fails_with_worker_lost(h: Harness, max_lost: int) -> None:
    h.max_lost = max_lost
    await h.submit({"a": sh(retries=5), "b": sh(after=["a"])})
    await h.capacity("cpu", 1)
    await h.dispatch()
    for attempt in range(1, max_lost):
        await h.finish("a", "lost")
        assert (await h.task("a"))["attempt"] == str(attempt + 1)
        assert await h.state("a") == "dispatched"
    await h.finish("a", "lost")
    t = await h.task("a")
    assert t["state"] == "failed"  # even with retries left: the task keeps killing workers
    assert t["reason"].startswith("worker_lost")
    assert t["lost"] == str(max_lost)
    assert await h.state("b") == "upstream_failed"
    assert (await h.run())["state"] == "failed"
    assert await delayed(h) == []
    await h.check()


async def test_lost_from_dispatched_state(h: Harness) -> None:
    """The reaper reports entries a dead worker never started."""
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.report("a", "lost") == (1, 0, 1)
    assert (await h.task("a"))["attempt"] == "2"
    await h.check()


# -- handed back ----------------------------------------------------------------------------


async def test_handed_back_requeues_without_counting(h: Harness) -> None:
    await h.submit({"a": sh(), "b": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    assert await h.queued() == ["a"]
    assert await h.report("a", "handed_back") == (1, 0, 1)  # a draining worker never started it
    t = await h.task("a")
    assert t["attempt"] == "2"
    assert "lost" not in t and "fails" not in t
    # requeued behind b (fresh FIFO position)
    assert await h.queued() == ["b"]
    assert await h.state("a") == "ready"
    await h.check()


async def test_handed_back_many_times_never_fails(h: Harness) -> None:
    await h.submit({"a": sh()})
    await h.capacity("cpu", 1)
    await h.dispatch()
    for _ in range(10):
        await h.finish("a", "handed_back")
    t = await h.task("a")
    assert (t["state"], t["attempt"]) == ("dispatched", "11")
    await h.finish("a")
    assert (await h.run())["state"] == "succeeded"
