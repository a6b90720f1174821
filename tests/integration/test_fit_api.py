"""A task bigger than every live runner, as the API shows it: the real app and engine loops
(dispatch tick, runner scan) on real Redis; the runner is registered as a worker does it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from broker.engine.groups import ensure_group
from broker.keys import WORKER_GROUP

WF = {
    "name": "sizes",
    "nodes": {
        "big": {"command": "true", "priority": 5, "resources": {"cores": 8}},
        "small": {"command": "true"},
    },
}


async def sized_runner(rds: Any, keys: Any, rid: str, cores: int) -> None:
    await rds.hset(keys.runner(rid), mapping={
        "host": "h", "classes": "cpu", "slots": 2, "executors": "shell,python,noop",
        "state": "active", "cores": str(cores), "memory_mb": "8192", "gpus": "0"})
    await rds.sadd(keys.runners(), rid)
    await rds.set(keys.heartbeat(rid), 1, ex=60)
    await ensure_group(rds, keys.queue("cpu"), WORKER_GROUP)


async def test_parked_task_is_explained_everywhere(make_client: Any, rds: Any, keys: Any) -> None:
    client: TestClient = await make_client(runner_scan_s=0.05)
    await sized_runner(rds, keys, "w4", 4)
    await client.post("/api/v1/workflow/publish", json=WF)
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "sizes"})).json())[
        "run"]
    reason = "needs 8 cores; the largest live runner of class 'cpu' offers 4 cores"

    async def parked() -> bool:
        return await rds.zscore(keys.unfit("cpu"), f"{run}:big") is not None

    await wait_until(parked, what="the 8-core task parked")
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    tasks = {t["id"]: t for t in st["tasks"]}
    assert tasks["big"]["state"] == "ready"
    assert tasks["big"]["waiting_for"] == reason
    assert tasks["small"]["state"] == "dispatched" and "waiting_for" not in tasks["small"]
    detail = await (await client.get(f"/api/v1/runs/{run}/tasks/big")).json()
    assert detail["task"]["waiting_for"] == reason

    q = (await (await client.get("/api/v1/queue/status")).json())["queues"]["cpu"]
    assert q["parked"] == 1 and q["ready"] == 0
    assert q["unfit"] == [{"tasks": 1, "needs": {"cores": 8}, "reason": reason}]
    status = await (await client.get("/api/v1/status")).json()
    assert status["queues"]["cpu"]["parked"] == 1
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(await (await client.get("/metrics")).text())
        for s in fam.samples
    }
    assert samples[("dagbroker_queue_unfit", (("class", "cpu"),))] == 1
    assert samples[("dagbroker_class_tasks", (("class", "cpu"), ("state", "unfit")))] == 1
    eta = await (await client.get(f"/api/v1/runs/{run}/eta")).json()
    assert eta["parked"] == ["big"] and eta["eta"] is None  # no estimate while nothing fits it
    assert {t["id"]: t["expected_finish"] for t in eta["tasks"]}["big"] is None

    # a big enough runner registers: the next scan dispatches the task
    await sized_runner(rds, keys, "w8", 8)

    async def dispatched() -> bool:
        return await rds.hget(keys.task(run, "big"), "state") == "dispatched"

    await wait_until(dispatched, what="the 8-core task dispatched")
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    assert all("waiting_for" not in t for t in st["tasks"])
    q = (await (await client.get("/api/v1/queue/status")).json())["queues"]["cpu"]
    assert q["parked"] == 0 and q["unfit"] == []
