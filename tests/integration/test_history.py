"""SQLite run history fed from the events stream; only archived runs expire from Redis."""

from __future__ import annotations

from typing import Any

from helpers import wait_until
from test_lifecycle_ops import complete_next, fake_runner

from broker.wire import Outcome

WF = {"name": "hist", "nodes": {"a": {"command": "true", "retries": 1, "retry_backoff": 0.01},
                                "b": {"command": "true", "after": ["a"]}}}


async def test_history_records_runs_and_attempts(make_client: Any, rds: Any, keys: Any) -> None:
    client = await make_client(runner_scan_s=0.05)
    await client.post("/api/v1/workflow/publish", json=WF)
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "hist"})).json())[
        "run"]
    await fake_runner(rds, keys)
    await complete_next(rds, keys, Outcome.FAILED)
    await complete_next(rds, keys, Outcome.SUCCEEDED)
    await complete_next(rds, keys, Outcome.SUCCEEDED)

    async def archived() -> bool:
        return bool(await rds.hget(keys.run(run), "archived"))

    await wait_until(archived, what="run archived")
    h = await (await client.get("/api/v1/history/runs", params={"workflow": "hist"})).json()
    assert [r["id"] for r in h["runs"]] == [run]
    row = h["runs"][0]
    assert row["state"] == "succeeded" and row["counts"] == {"succeeded": 2}
    att = await (await client.get(f"/api/v1/runs/{run}/attempts")).json()
    got = [(a["task"], a["attempt"], a["state"]) for a in att["attempts"]]
    assert got == [("a", 1, "retry_wait"), ("a", 2, "succeeded"), ("b", 1, "succeeded")]
    # final attempts carry their runner (earlier ones get it from the worker's `running` event,
    # which this hand-played runner does not send)
    assert [a["runner"] for a in att["attempts"][1:]] == ["w1", "w1"]
    assert att["attempts"][1]["duration_ms"] is not None
    # filters and isolation
    none = await (await client.get("/api/v1/history/runs", params={"state": "failed"})).json()
    assert none["runs"] == []
    r = await client.post("/api/v1/users", json={"id": "eve"})
    eve = {"Authorization": f"Bearer {(await r.json())['token']}"}
    mine = await (await client.get("/api/v1/history/runs", headers=eve)).json()
    assert mine["runs"] == []
    assert (await client.get(f"/api/v1/runs/{run}/attempts", headers=eve)).status == 404
    r = await client.get("/api/v1/history/runs", params={"since": "yesterday"})
    assert r.status == 400
    # every run and task transition is in the audit trail, once
    trail = await (await client.get("/api/v1/audit", params={"run": run, "limit": 500})).json()
    actions = [(a["action"], a["target"]) for a in trail["audit"]]
    assert ("run succeeded", run) in actions and ("run running", run) in actions
    assert ("task retry_wait", f"{run}:a") in actions
    assert actions.count(("task succeeded", f"{run}:b")) == 1
    assert ("POST /api/v1/workflow/execute", run) in actions


async def test_janitor_expires_only_archived_runs(make_client: Any, rds: Any, keys: Any) -> None:
    from broker.api.appkeys import ENGINE

    client = await make_client(retention_s=0)
    engine = client.app[ENGINE]
    await client.post("/api/v1/workflow/publish", json=WF)
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "hist"})).json())[
        "run"]
    await client.post("/api/v1/workflow/cancel", json={"run": run})

    async def archived() -> bool:
        return bool(await rds.hget(keys.run(run), "archived"))

    await wait_until(archived, what="run archived")  # the archiver is done with this run
    await rds.hdel(keys.run(run), "archived")  # as if the archiver had not got to it yet
    assert await engine.janitor.expire_finished_runs() == 0
    assert await rds.exists(keys.run(run))
    await rds.hset(keys.run(run), "archived", 1)
    assert await engine.janitor.expire_finished_runs() == 1
    assert not await rds.exists(keys.run(run))
