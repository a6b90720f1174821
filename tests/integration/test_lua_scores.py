"""lib.lua `score` against broker.core.scoring.score: the same exact integers, even at the edges."""

from __future__ import annotations

import pytest
from test_lua_support import NOW, Harness, harness_fixture, sh  # noqa: F401

from broker.core.scoring import SEQ_SPAN, score, unscore

EXTREMES = [1000, 999, 1, 0, -1, -999, -1000]


@pytest.mark.parametrize("priority", EXTREMES)
async def test_lua_score_of_a_released_child_equals_python(h: Harness, priority: int) -> None:
    await h.submit({"a": sh(priority=1000), "b": sh(after=["a"], priority=priority)})
    await h.capacity("cpu", 1)
    assert await h.dispatch() == 1
    await h.capacity("cpu", 0)  # so that b stays in the ready set
    await h.finish("a")
    seq = int(await h.rds.get(h.keys.seq()))
    assert await h.ready() == [("r1:b", float(score(priority, seq)))]
    ((_, value),) = await h.ready()
    assert unscore(value) == (priority, seq)


@pytest.mark.parametrize("priority", [1000, -1000])
@pytest.mark.parametrize("seq_before", [SEQ_SPAN - 2, SEQ_SPAN - 1, 2 * SEQ_SPAN + 5])
async def test_lua_score_at_the_sequence_edges(h: Harness, priority: int, seq_before: int) -> None:
    """The largest score (priority -1000, seq 2**40-1) and the wrap-around stay exact."""
    await h.submit({"a": sh(), "b": sh(after=["a"], priority=priority)})
    await h.capacity("cpu", 1)
    assert await h.dispatch() == 1
    await h.capacity("cpu", 0)
    await h.rds.set(h.keys.seq(), seq_before)
    await h.finish("a")
    seq = seq_before + 1
    expected = score(priority, seq)
    value = await h.rds.zscore(h.keys.ready("cpu"), "r1:b")
    assert value == expected
    assert int(value) == expected
    assert unscore(value) == (priority, seq % SEQ_SPAN)


@pytest.mark.parametrize("priority", EXTREMES)
async def test_retry_requeue_score_equals_python(h: Harness, priority: int) -> None:
    await h.submit({"a": sh(priority=priority, retries=1, retry_backoff=0)})
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.capacity("cpu", 0)
    await h.finish("a", "failed")
    promoted, _ = await h.scripts.promote(now=NOW)
    assert promoted == 1
    seq = int(await h.rds.get(h.keys.seq()))
    assert await h.rds.zscore(h.keys.ready("cpu"), "r1:a") == score(priority, seq)


@pytest.mark.parametrize("priority", [-1000, 1000])
async def test_staged_extreme_scores_survive_release(h: Harness, priority: int) -> None:
    """release_run copies staging scores through Lua (ZRANGE WITHSCORES → ZADD): no rounding."""
    await h.rds.set(h.keys.seq(), SEQ_SPAN - 3)
    await h.submit({"a": sh(priority=priority), "b": sh(priority=priority)})
    assert await h.ready() == [
        ("r1:a", float(score(priority, SEQ_SPAN - 2))),
        ("r1:b", float(score(priority, SEQ_SPAN - 1))),
    ]
    for _, value in await h.ready():
        assert int(value) == value


@pytest.mark.parametrize("stored", [5000, -5000, 1001, -1001])
async def test_lua_score_clamps_out_of_range_priorities_like_python(
    h: Harness, stored: int
) -> None:
    """A priority outside [-1000, 1000] in a task hash (e.g. changed after expansion) must
    score as Python's clamped `score`, keeping every score inside the exact band layout."""
    await h.submit({"a": sh(), "b": sh(after=["a"])})
    await h.rds.hset(h.keys.task("r1", "b"), "priority", stored)
    await h.capacity("cpu", 1)
    await h.dispatch()
    await h.capacity("cpu", 0)
    await h.finish("a")
    seq = int(await h.rds.get(h.keys.seq()))
    assert await h.rds.zscore(h.keys.ready("cpu"), "r1:b") == score(stored, seq)
