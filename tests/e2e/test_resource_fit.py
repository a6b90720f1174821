"""End to end, real processes: a task bigger than every live worker waits (parked, explained)
while the small ones run, and runs on the first worker big enough for it."""

from __future__ import annotations

from typing import Any

from helpers import wait_until

from e2e.cluster import Cluster, api, publish_and_run, wait_run

WF = {
    "name": "sized",
    "nodes": {
        "big": {"command": "echo big", "priority": 10, "resources": {"cores": 4}},
        "small1": {"command": "echo small"},
        "small2": {"command": "echo small", "after": ["small1"]},
    },
}


async def test_big_task_waits_for_a_big_enough_worker(cluster: Cluster) -> None:
    _, url = cluster.start_broker()
    cluster.start_worker("--cores", "2", name="w2", slots=2)
    run = await publish_and_run(url, WF)
    st: dict[str, Any] = {}

    async def smalls_done_big_parked() -> bool:
        nonlocal st
        st = await api(url, "GET", "/api/v1/workflow/status", run=run)
        tasks = {t["id"]: t for t in st["tasks"]}
        return tasks["small2"]["state"] == "succeeded" and "waiting_for" in tasks["big"]

    await wait_until(smalls_done_big_parked, what="small tasks done, the big one parked")
    big = {t["id"]: t for t in st["tasks"]}["big"]
    assert big["state"] == "ready" and big["dispatched_at"] is None
    assert big["waiting_for"] == (
        "needs 4 cores; the largest live runner of class 'cpu' offers 2 cores")
    q = (await api(url, "GET", "/api/v1/queue/status"))["queues"]["cpu"]
    assert q["parked"] == 1 and q["unfit"][0]["needs"] == {"cores": 4}

    cluster.start_worker("--cores", "4", name="w4", slots=1)
    st = await wait_run(url, run, cluster=cluster)
    assert st["run"]["state"] == "succeeded", st
    tasks = {t["id"]: t for t in st["tasks"]}
    assert st["run"]["counts"] == {"succeeded": 3}
    # ran on w4; the class stream is shared, so w2 may read it first and hand it back unrun
    # (worker side), which counts as another attempt but never as a failure
    assert tasks["big"]["runner"] == "w4" and tasks["big"]["fails"] is None
    assert tasks["small1"]["runner"] == "w2"
