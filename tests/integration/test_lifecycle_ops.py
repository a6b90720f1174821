"""Run lifecycle (new → PATCH → queue, results, delete, messages), queue and runner operations."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
from helpers import wait_until

from broker.engine.groups import ensure_group
from broker.keys import WORKER_GROUP
from broker.wire import Completion, Outcome, TaskMessage

WF = {
    "name": "life",
    "params": {"n": 1},
    "nodes": {
        "a": {"command": "echo {{n}}", "retries": 1, "retry_backoff": 0.01},
        "b": {"command": "true", "after": ["a"]},
    },
}


async def fake_runner(rds: Any, keys: Any, rid: str = "w1", slots: int = 4) -> None:
    """Register a runner in Redis as a worker does (the tests then play its part by hand)."""
    await rds.hset(keys.runner(rid), mapping={"host": "h", "classes": "cpu", "slots": slots,
                                              "executors": "shell,python,noop", "state": "active"})
    await rds.sadd(keys.runners(), rid)
    await rds.set(keys.heartbeat(rid), 1, ex=30)
    await ensure_group(rds, keys.queue("cpu"), WORKER_GROUP)


async def complete_next(rds: Any, keys: Any, outcome: Outcome, rid: str = "w1") -> TaskMessage:
    """Read one dispatched task as runner `rid` and report `outcome` for it."""
    resp: list[Any] = []

    async def read() -> bool:
        nonlocal resp
        resp = await rds.xreadgroup(WORKER_GROUP, rid, {keys.queue("cpu"): ">"}, count=1, block=100)
        return bool(resp)

    await wait_until(read, what="a dispatched task")
    stream, entries = resp[0]
    eid, fields = entries[0]
    msg = TaskMessage.from_fields(stream, eid, fields)
    c = Completion(run=msg.run, node=msg.node, attempt=msg.attempt, outcome=outcome, runner=rid,
                   reason="exit code 1" if outcome == Outcome.FAILED else "",
                   result={"node": msg.node}, started_at_ms=int(time.time() * 1000) - 5,
                   finished_at_ms=int(time.time() * 1000))
    pipe = rds.pipeline(transaction=True)
    pipe.xadd(keys.done(), c.to_fields())
    pipe.xack(stream, WORKER_GROUP, eid)
    pipe.xdel(stream, eid)
    await pipe.execute()
    return msg


async def test_new_run_patch_then_queue_then_results_and_delete(
    make_client: Any, rds: Any, keys: Any
) -> None:
    client: TestClient = await make_client(runner_scan_s=0.05)
    await client.post("/api/v1/workflow/publish", json=WF)
    r = await client.post("/api/v1/workflow/execute", json={"name": "life", "queue": False})
    assert r.status == 201
    run = (await r.json())["run"]
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    assert st["run"]["state"] == "new" and st["run"]["phase"] == "new"
    # a bad override is rejected and changes nothing
    r = await client.patch(f"/api/v1/runs/{run}", json={"params": {"m": 2}})
    assert r.status == 422 and "unknown parameter 'm'" in (await r.json())["error"]["message"]
    r = await client.patch(f"/api/v1/runs/{run}", json={"params": {"n": 7}})
    assert r.status == 200, await r.text()
    assert (await r.json())["run"]["params"] == {"n": 7}
    r = await client.post(f"/api/v1/runs/{run}/queue")
    assert r.status == 200
    assert (await r.json())["run"]["phase"] == "queued"
    r = await client.patch(f"/api/v1/runs/{run}", json={"params": {"n": 8}})
    assert r.status == 409
    await fake_runner(rds, keys)
    first = await complete_next(rds, keys, Outcome.FAILED)  # a fails once: a retry message
    assert first.node == "a" and first.params == {"n": 7}
    await complete_next(rds, keys, Outcome.SUCCEEDED)
    # not finished yet: it cannot be deleted
    assert (await client.delete(f"/api/v1/runs/{run}")).status == 409
    await complete_next(rds, keys, Outcome.SUCCEEDED)

    async def finished() -> bool:
        st = await (await client.get(f"/api/v1/runs/{run}?tasks=0")).json()
        return st["run"]["phase"] == "finished"

    await wait_until(finished, what="run finished")
    msgs = await (await client.get(f"/api/v1/runs/{run}/messages")).json()
    assert any("retry 1 of 1" in m["text"] and m["task"] == "a" for m in msgs["messages"])
    # results must be fetched before deletion (or force)
    r = await client.delete(f"/api/v1/runs/{run}")
    assert r.status == 409 and "results" in (await r.json())["error"]["message"]
    res = await (await client.get(f"/api/v1/runs/{run}/results")).json()
    assert res["results"] == {"a": {"node": "a"}, "b": {"node": "b"}}
    assert (await client.delete(f"/api/v1/runs/{run}")).status == 200
    assert (await client.get(f"/api/v1/runs/{run}")).status == 404
    assert not await rds.exists(keys.run(run), keys.task(run, "a"), keys.tasks(run))


async def test_queue_status_reports_unfit_tasks_and_clear(
    make_client: Any, rds: Any, keys: Any
) -> None:
    client: TestClient = await make_client(runner_scan_s=0.05)
    gpu = {"name": "g", "nodes": {"train": {"command": "true", "resources": {"gpus": 1}},
                                  "after": {"command": "true", "after": ["train"]}}}
    await client.post("/api/v1/workflow/publish", json=gpu)
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "g"})).json())["run"]
    q = (await (await client.get("/api/v1/queue/status")).json())["queues"]
    assert q["gpu"]["ready"] == 1 and q["gpu"]["runners"] == []
    assert q["gpu"]["unfit"][0]["reason"] == "no live runner serves class 'gpu'"
    assert q["gpu"]["oldest_ready_age_s"] is not None
    # a user may not clear queues; an admin may
    r = await client.post("/api/v1/users", json={"id": "u1"})
    user_token = (await r.json())["token"]
    r = await client.post("/api/v1/queue/clear", json={"class": "gpu"},
                          headers={"Authorization": f"Bearer {user_token}"})
    assert r.status == 403
    r = await client.post("/api/v1/queue/clear", json={"class": "gpu"})
    assert (await r.json())["cleared"] == {"gpu": 1}
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    states = {t["id"]: t["state"] for t in st["tasks"]}
    assert states == {"train": "cancelled", "after": "upstream_failed"}
    assert st["run"]["state"] == "failed"


async def test_runner_routes(make_client: Any, rds: Any, keys: Any) -> None:
    client: TestClient = await make_client()
    await fake_runner(rds, keys, "w9")
    runners = (await (await client.get("/api/v1/runners/status")).json())["runners"]
    assert [r["id"] for r in runners] == ["w9"] and runners[0]["alive"]
    r = await client.post("/api/v1/runners/shutdown", json={"runner": "w9"})
    assert r.status == 200
    orders = await rds.xrange(keys.control("w9"))
    assert orders[-1][1] == {"op": "drain"}
    r = await client.post("/api/v1/runners/shutdown", json={"runner": "nope"})
    assert r.status == 404
    r = await client.post("/api/v1/runners/register",
                          json={"host": "node7", "classes": ["cpu"], "slots": 8})
    assert r.status == 201
    reg = await r.json()
    assert reg["runner"].startswith("node7-") and reg["token"].startswith("dgb_")
    me = await client.get("/api/v1/users/me",
                          headers={"Authorization": f"Bearer {reg['token']}"})
    assert (await me.json())["scopes"] == ["runner"]
    # a runner token cannot read runs
    r = await client.get("/api/v1/runs", headers={"Authorization": f"Bearer {reg['token']}"})
    assert r.status == 403


async def test_admin_cancel_all(make_client: Any) -> None:
    client: TestClient = await make_client()
    await client.post("/api/v1/workflow/publish", json=WF)
    runs = [(await (await client.post("/api/v1/workflow/execute", json={"name": "life"})).json())
            ["run"] for _ in range(3)]
    r = await client.post("/api/v1/admin/cancel_all")
    assert sorted((await r.json())["cancelled"]) == sorted(runs)
    for run in runs:
        st = await (await client.get(f"/api/v1/runs/{run}?tasks=0")).json()
        assert st["run"]["state"] == "cancelled"
