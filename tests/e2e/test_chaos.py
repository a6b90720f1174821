"""Invariants tested by breaking them: kill -9 workers and brokers, replays, racing brokers."""

from __future__ import annotations

import time
from typing import Any

from helpers import wait_until

from broker.wire import Completion, Outcome
from e2e.cluster import Cluster, api, publish_and_run, wait_run


def by_id(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in st["tasks"]}


async def task_state(url: str, run: str, node: str) -> dict[str, Any]:
    st = await api(url, "GET", "/api/v1/workflow/status", run=run)
    return by_id(st)[node]


async def test_sigkill_worker_mid_task_run_completes_elsewhere(cluster: Cluster) -> None:
    """Invariant 3: a dead worker's task is reclaimed and retried on another worker, and the
    dead worker's attempt does not keep running beside the retry (no doubled work)."""
    import asyncio

    _, url = cluster.start_broker()
    w1 = cluster.start_worker(name="w1", slots=1, heartbeat_ttl=1.0)
    out = cluster.tmp / "ran"
    wf = {"name": "victim", "nodes": {
        "work": {"command": f"echo start $DAGB_ATTEMPT >> {out}; sleep 2; "
                            f"echo end $DAGB_ATTEMPT >> {out}"},
        "next": {"command": "true", "after": ["work"]},
    }}
    run = await publish_and_run(url, wf)

    async def running_on_w1() -> bool:
        t = await task_state(url, run, "work")
        return t["state"] == "running" and t["runner"] == "w1"

    async def first_attempt_started() -> bool:  # `running` is set just before the spawn
        return out.exists() and "start 1" in out.read_text().splitlines()

    await wait_until(running_on_w1, what="task running on w1")
    await wait_until(first_attempt_started, what="attempt 1 writing to the ran file")
    w1.kill9()
    cluster.start_worker(name="w2", slots=1, heartbeat_ttl=1.0)
    st = await wait_run(url, run, timeout_s=60, cluster=cluster)
    t = by_id(st)
    assert st["run"]["state"] == "succeeded", st
    assert t["work"]["runner"] == "w2" and t["work"]["attempt"] == 2 and t["work"]["lost"] == 1
    assert t["next"]["state"] == "succeeded"
    await asyncio.sleep(2.5)  # past the end of attempt 1's `sleep 2`, had it survived w1
    assert out.read_text().splitlines() == ["start 1", "start 2", "end 2"]


async def test_task_that_keeps_killing_workers_fails(cluster: Cluster) -> None:
    """After max_lost losses the task fails with reason worker_lost instead of looping."""
    _, url = cluster.start_broker()
    wf = {"name": "killer", "nodes": {"k": {"command": "sleep 60"}}}
    run = await publish_and_run(url, wf)
    for i in range(3):  # default max_lost = 3
        w = cluster.start_worker(name=f"k{i}", slots=1, heartbeat_ttl=1.0)

        async def running_on(name: str = f"k{i}") -> bool:
            t = await task_state(url, run, "k")
            return t["state"] == "running" and t["runner"] == name

        await wait_until(running_on, what=f"task running on k{i}")
        w.kill9()
    st = await wait_run(url, run, timeout_s=60, cluster=cluster)
    t = by_id(st)["k"]
    assert st["run"]["state"] == "failed"
    assert t["state"] == "failed" and t["reason"].startswith("worker_lost"), t


async def test_completion_delivered_twice_releases_children_once(
    cluster: Cluster, rds: Any, keys: Any
) -> None:
    """Invariant 2: replaying a completion (and the worker's own late one) changes nothing."""
    _, url = cluster.start_broker()
    gate = cluster.tmp / "gate"
    log = cluster.tmp / "child-ran"
    wf = {"name": "twice", "nodes": {
        "a": {"command": f"while [ ! -f {gate} ]; do sleep 0.02; done"},
        "b": {"command": f"echo b >> {log}", "after": ["a"]},
        "c": {"command": f"echo c >> {log}", "after": ["b"]},
    }}
    cluster.start_worker(name="w1", slots=2)
    run = await publish_and_run(url, wf)

    async def a_running() -> bool:
        return (await task_state(url, run, "a"))["state"] == "running"

    await wait_until(a_running, what="a running")
    fake = Completion(run=run, node="a", attempt=1, outcome=Outcome.SUCCEEDED, runner="replay",
                      finished_at_ms=int(time.time() * 1000))
    await rds.xadd(keys.done(), fake.to_fields())
    await rds.xadd(keys.done(), fake.to_fields())
    gate.touch()  # the worker now reports a third completion for the same attempt
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded"
    assert log.read_text().split() == ["b", "c"]
    t = by_id(st)
    assert t["b"]["attempt"] == 1 and t["c"]["attempt"] == 1
    assert int(await rds.hget(keys.task(run, "b"), "deps_left")) == 0
    assert st["run"]["counts"] == {"succeeded": 3}
    status = await api(url, "GET", "/api/v1/status")
    assert status["completions"]["ignored"] >= 1


async def test_broker_killed_mid_expansion_dispatches_nothing(
    cluster: Cluster, rds: Any, keys: Any
) -> None:
    """All-or-nothing expansion: a broker killed while writing a run leaves nothing runnable."""
    broker, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=4)
    wf = {"name": "huge", "defaults": {"executor": "noop"},
          "nodes": {"many": {"matrix": {"i": list(range(100_000))}}}}
    await api(url, "POST", "/api/v1/workflow/publish", wf)

    import asyncio

    import aiohttp

    async def execute() -> None:
        from e2e.cluster import TOKENS

        headers = {"Authorization": f"Bearer {TOKENS[url]}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            try:
                await http.post(url + "/api/v1/workflow/execute", json={"name": "huge"})
            except aiohttp.ClientError:
                pass

    request = asyncio.create_task(execute())

    async def expanding_run() -> str | None:
        runs = await rds.zrange(keys.expanding(), 0, -1)
        if runs and await rds.llen(keys.tasks(runs[0])) > 0:
            return str(runs[0])
        return None

    run = await wait_until(expanding_run, what="expansion under way", interval_s=0.005)
    broker.kill9()
    await request
    assert await rds.hget(keys.run(run), "state") == "expanding"
    written = await rds.llen(keys.tasks(run))
    assert 0 < written < 100_000, written
    # Nothing of it reached a ready set or a worker stream.
    assert await rds.zcard(keys.ready("cpu")) == 0
    assert await rds.xlen(keys.queue("cpu")) == 0
    # A new broker fails the interrupted run once its expansion deadline has passed.
    _, url2 = cluster.start_broker("--expand-timeout", "1")

    async def failed() -> bool:
        return await rds.hget(keys.run(run), "state") == "failed"

    await wait_until(failed, timeout_s=30, what="interrupted run failed by the janitor")
    assert "expansion interrupted" in await rds.hget(keys.run(run), "reason")
    assert await rds.zcard(keys.ready("cpu")) == 0
    assert await rds.xlen(keys.queue("cpu")) == 0
    assert [k async for k in rds.scan_iter(f"{keys.prefix}:staging:*")] == []


async def test_two_brokers_share_completions(cluster: Cluster) -> None:
    _, url1 = cluster.start_broker()
    _, url2 = cluster.start_broker()
    cluster.start_worker(name="w1", slots=8)
    wf = {"name": "shared", "defaults": {"executor": "noop"},
          "nodes": {"m": {"matrix": {"i": list(range(2000))}}}}
    run = await publish_and_run(url1, wf)
    st = await wait_run(url2, run, timeout_s=60, cluster=cluster)
    assert st["run"]["state"] == "succeeded" and st["run"]["counts"] == {"succeeded": 2000}
    s1 = await api(url1, "GET", "/api/v1/status")
    s2 = await api(url2, "GET", "/api/v1/status")
    assert s1["brokers"] == 2
    assert s1["completions"]["applied"] + s2["completions"]["applied"] >= 2000
    assert s1["completions"]["applied"] > 0 and s2["completions"]["applied"] > 0


async def test_broker_killed_mid_run_other_broker_finishes_it(cluster: Cluster) -> None:
    b1, url1 = cluster.start_broker("--claim-idle-ms", "1000")
    _, url2 = cluster.start_broker("--claim-idle-ms", "1000")
    cluster.start_worker(name="w1", slots=4)
    wf = {"name": "chain", "nodes": {f"s{i}": {"command": "sleep 0.05",
                                             **({"after": [f"s{i - 1}"]} if i else {})}
                                     for i in range(30)}}
    run = await publish_and_run(url1, wf)

    async def some_done() -> bool:
        st = await api(url2, "GET", "/api/v1/workflow/status", run=run, tasks="0")
        return st["run"]["counts"].get("succeeded", 0) >= 5

    await wait_until(some_done, what="run half way")
    b1.kill9()
    st = await wait_run(url2, run, timeout_s=60, cluster=cluster)
    assert st["run"]["state"] == "succeeded"
    assert st["run"]["counts"] == {"succeeded": 30}
    from e2e.test_runs import assert_dependency_order

    assert_dependency_order(st)
