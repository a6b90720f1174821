"""End to end with real processes: broker (`dagbroker serve`) + workers (`python -m worker`)."""

from __future__ import annotations

from typing import Any

from e2e.cluster import Cluster, api, publish_and_run, wait_run


def by_id(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in st["tasks"]}


def assert_dependency_order(st: dict[str, Any]) -> None:
    """Invariant 1: every task started only after each of its parents finished."""
    tasks = by_id(st)
    for t in tasks.values():
        if t["state"] != "succeeded":
            continue
        for p in t["parents"]:
            parent = tasks[p]
            assert parent["state"] == "succeeded", (t["id"], p)
            assert t["started_at"] >= parent["finished_at"], (t["id"], p)


DIAMOND = {
    "name": "diamond",
    "params": {"word": 'it\'s a "test"; $(echo x)'},
    "nodes": {
        "prepare": {"command": "echo {{word}} > /dev/null && echo '{\"n\": 20}' > $DAGB_RESULT"},
        "left": {"command": "cat $DAGB_INPUTS > /dev/null; echo 1", "after": ["prepare"]},
        "right": {"command": "echo 2", "after": ["prepare"]},
        "combine": {"executor": "noop", "after": ["left", "right"]},
    },
}


async def test_diamond_runs_in_dependency_order(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    run = await publish_and_run(url, DIAMOND)
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", st
    assert st["run"]["counts"] == {"succeeded": 4}
    assert by_id(st)["prepare"]["result"] == {"n": 20}
    assert_dependency_order(st)


async def test_fan_out_fan_in_1000(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=16)
    cluster.start_worker(name="w2", slots=16)
    wf = {
        "name": "fan",
        "defaults": {"executor": "noop"},
        "nodes": {
            "root": {},
            "mid": {"after": ["root"], "matrix": {"i": list(range(1000))}},
            "sink": {"after": ["mid"]},
        },
    }
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, timeout_s=120, cluster=cluster)
    assert st["run"]["state"] == "succeeded"
    assert st["run"]["counts"] == {"succeeded": 1002}
    tasks = by_id(st)
    assert len(tasks["sink"]["parents"]) == 1000
    assert_dependency_order(st)
    assert {t["runner"] for t in st["tasks"]} == {"w1", "w2"}


async def test_failure_fails_descendants_not_independent_branch(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    wf = {
        "name": "branches",
        "nodes": {
            "bad": {"command": "echo boom >&2; exit 3"},
            "child": {"command": "true", "after": ["bad"]},
            "grandchild": {"command": "true", "after": ["child"]},
            "cleanup": {"command": "true", "after": ["bad"], "trigger": "all_done"},
            "good": {"command": "true"},
            "good2": {"command": "true", "after": ["good"]},
        },
    }
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, cluster=cluster)
    t = by_id(st)
    assert st["run"]["state"] == "failed"
    assert t["bad"]["state"] == "failed" and t["bad"]["exit_code"] == 3
    assert "exit code 3" in t["bad"]["reason"]
    assert t["child"]["state"] == "upstream_failed"
    assert t["grandchild"]["state"] == "upstream_failed"
    assert t["cleanup"]["state"] == "succeeded"
    assert t["good"]["state"] == t["good2"]["state"] == "succeeded"


async def test_retry_with_backoff_then_success(cluster: Cluster, rds: Any, keys: Any) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=1)
    marker = cluster.tmp / "attempted"
    wf = {
        "name": "flaky",
        "nodes": {
            "flaky": {
                "command": f"if [ -f {marker} ]; then echo ok; else touch {marker}; exit 1; fi",
                "retries": 2,
                "retry_backoff": 0.5,
            }
        },
    }
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, cluster=cluster)
    t = by_id(st)["flaky"]
    assert st["run"]["state"] == "succeeded"
    assert t["attempt"] == 2 and t["fails"] == 1
    # The retry waited its backoff: due_at = first failure + 0.5 s, and it started after that.
    due_at = int(await rds.hget(keys.task(run, "flaky"), "due_at"))
    assert t["started_at"] >= due_at
    failed_at = due_at - 500
    assert t["started_at"] - failed_at >= 500


async def test_timeout_fails_the_task(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=1)
    wf = {"name": "slow", "nodes": {"slow": {"command": "sleep 30", "timeout": 0.5}}}
    run = await publish_and_run(url, wf)
    st = await wait_run(url, run, cluster=cluster)
    t = by_id(st)["slow"]
    assert t["state"] == "failed" and "timeout" in t["reason"]


async def test_priority_overtakes_with_one_slot(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    gate = cluster.tmp / "gate"
    low = {
        "name": "low",
        "nodes": {
            "blocker": {"command": f"while [ ! -f {gate} ]; do sleep 0.02; done", "priority": 5},
            **{f"low{i}": {"command": "true"} for i in range(4)},
        },
    }
    high = {"name": "high", "nodes": {f"high{i}": {"command": "true"} for i in range(3)}}
    cluster.start_worker(name="w1", slots=1)
    low_run = await publish_and_run(url, low)

    async def blocker_running() -> bool:
        st = await api(url, "GET", "/api/v1/workflow/status", run=low_run)
        return by_id(st)["blocker"]["state"] == "running"

    from helpers import wait_until

    await wait_until(blocker_running, what="blocker running")
    high_run = await publish_and_run(url, high, priority=10)
    gate.touch()
    low_st = await wait_run(url, low_run, cluster=cluster)
    high_st = await wait_run(url, high_run, cluster=cluster)
    starts = sorted([(t["started_at"], t["id"]) for t in low_st["tasks"] + high_st["tasks"]])
    order = [tid for _, tid in starts]
    # blocker first (it held the slot); every high task before any low; FIFO within a priority.
    assert order[0] == "blocker"
    assert order[1:4] == ["high0", "high1", "high2"], order
    assert order[4:] == ["low0", "low1", "low2", "low3"], order


async def test_cancel_running_run(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker(name="w1", slots=2)
    wf = {
        "name": "long",
        "nodes": {"long": {"command": "sleep 60"}, "after": {"command": "true", "after": ["long"]}},
    }
    run = await publish_and_run(url, wf)
    from helpers import wait_until

    async def running() -> bool:
        st = await api(url, "GET", "/api/v1/workflow/status", run=run)
        return by_id(st)["long"]["state"] == "running"

    await wait_until(running, what="task running")
    out = await api(url, "POST", "/api/v1/workflow/cancel", {"run": run})
    assert out["running_cancelled"] == 1
    st = await wait_run(url, run)
    assert st["run"]["state"] == "cancelled"
    assert {t["state"] for t in st["tasks"]} == {"cancelled"}
