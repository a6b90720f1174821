"""REST API: publish/execute/status/cancel, and bad input → precise 4xx with no state written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

DIAMOND = {
    "name": "diamond",
    "params": {"greeting": "hi"},
    "nodes": {
        "a": {"command": "echo {{greeting}}"},
        "b": {"command": "echo b", "after": ["a"]},
        "c": {"command": "echo c", "after": ["a"]},
        "d": {"command": "echo d", "after": ["b", "c"]},
    },
}


@pytest.fixture
async def client(make_client: Any) -> TestClient:
    return await make_client(max_body_bytes=64 * 1024)


async def state_snapshot(client: TestClient, rds: Any, prefix: str) -> tuple[list[str], Any]:
    run_keys = sorted(
        [k async for k in rds.scan_iter(f"{prefix}:run:*")]
        + [k async for k in rds.scan_iter(f"{prefix}:task:*")]
        + [k async for k in rds.scan_iter(f"{prefix}:spec:*")]
        + [k async for k in rds.scan_iter(f"{prefix}:ready:*")]
    )
    r = await client.get("/api/v1/workflows")
    return run_keys, await r.json()


async def publish(client: TestClient, doc: Any) -> Any:
    body = doc if isinstance(doc, bytes | str) else json.dumps(doc)
    return await client.post(
        "/api/v1/workflow/publish", data=body, headers={"Content-Type": "application/json"}
    )


async def test_publish_execute_status(client: TestClient) -> None:
    r = await publish(client, DIAMOND)
    assert r.status == 201, await r.text()
    pub = await r.json()
    assert pub["name"] == "diamond" and len(pub["revision"]) == 40 and pub["nodes"] == 4
    r = await client.post(
        "/api/v1/workflow/execute", json={"name": "diamond", "params": {"greeting": "hello"}}
    )
    assert r.status == 201, await r.text()
    ex = await r.json()
    assert ex["revision"] == pub["revision"] and ex["tasks"] == 4
    r = await client.get("/api/v1/workflow/status", params={"run": ex["run"]})
    st = await r.json()
    assert st["run"]["state"] == "running" and st["run"]["params"] == {"greeting": "hello"}
    states = {t["id"]: t["state"] for t in st["tasks"]}
    # No worker is registered: the root waits in the ready set, the rest wait on it.
    assert states == {"a": "ready", "b": "pending", "c": "pending", "d": "pending"}
    r = await client.get(f"/api/v1/runs/{ex['run']}")
    assert (await r.json())["run"]["id"] == ex["run"]
    r = await client.post("/api/v1/workflow/cancel", json={"run": ex["run"]})
    assert r.status == 200 and (await r.json())["state"] == "cancelled"
    r = await client.post("/api/v1/workflow/cancel", json={"run": ex["run"]})
    assert r.status == 409
    err = (await r.json())["error"]
    assert err["code"] == "conflict" and "already finished" in err["message"]


async def test_republish_same_content_is_unchanged(client: TestClient) -> None:
    first = await (await publish(client, DIAMOND)).json()
    second = await (await publish(client, DIAMOND)).json()
    assert second["revision"] == first["revision"] and second["changed"] is False
    changed = {**DIAMOND, "description": "v2"}
    third = await (await publish(client, changed)).json()
    assert third["revision"] != first["revision"]
    r = await client.get(
        "/api/v1/workflow/get", params={"name": "diamond", "revision": first["revision"][:10]}
    )
    assert (await r.json())["workflow"].get("description") is None


BAD_SPECS = [
    pytest.param(
        b'{"name": "x", "nodes": {', 400, "bad_request", "invalid JSON", id="invalid-json"
    ),
    pytest.param(
        {
            "name": "x",
            "nodes": {
                "a": {"command": "true", "after": ["c"]},
                "b": {"command": "true", "after": ["a"]},
                "c": {"command": "true", "after": ["b"]},
            },
        },
        422,
        "invalid_workflow",
        "dependency cycle",
        id="cycle",
    ),
    pytest.param(
        {"name": "x", "nodes": {"a": {"command": "true", "after": ["ghost"]}}},
        422,
        "invalid_workflow",
        "node 'a', field 'after[0]': unknown dependency 'ghost'",
        id="unknown-dep",
    ),
    pytest.param(
        {"name": "x", "nodes": {"a": {"command": "true", "retries": "three"}}},
        422,
        "invalid_workflow",
        "node 'a', field 'retries'",
        id="wrong-type",
    ),
    pytest.param(
        {"name": "x", "nodes": {"a": {"command": "true", "comand": "typo"}}},
        422,
        "invalid_workflow",
        "comand",
        id="unknown-field",
    ),
    pytest.param(
        b'{"name": "x", "nodes": {"a": {"command": "true"}, "a": {"command": "false"}}}',
        422,
        "invalid_workflow",
        "duplicate node id 'a'",
        id="duplicate-id",
    ),
    pytest.param(
        json.dumps(
            {"name": "x", "description": "y" * 70_000, "nodes": {"a": {"executor": "noop"}}}
        ),
        413,
        "payload_too_large",
        "too large",
        id="oversized",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "fragment"), BAD_SPECS)
async def test_bad_spec_is_rejected_and_writes_nothing(
    client: TestClient, rds: Any, prefix: str, body: Any, status: int, code: str, fragment: str
) -> None:
    await publish(client, DIAMOND)
    before = await state_snapshot(client, rds, prefix)
    r = await publish(client, body)
    assert r.status == status, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == code
    assert fragment in err["message"], err
    assert "Traceback" not in json.dumps(err)
    assert await state_snapshot(client, rds, prefix) == before


async def test_cycle_reports_its_nodes(client: TestClient) -> None:
    r = await publish(
        client,
        {
            "name": "x",
            "nodes": {
                "a": {"command": "true", "after": ["c"]},
                "b": {"command": "true", "after": ["a"]},
                "c": {"command": "true", "after": ["b"]},
                "d": {"command": "true", "after": ["a"]},
            },
        },
    )
    err = (await r.json())["error"]
    cycle = err["details"]["cycle"]
    assert set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1]


async def test_execute_errors_write_no_run(client: TestClient, rds: Any, prefix: str) -> None:
    await publish(client, DIAMOND)
    before = await state_snapshot(client, rds, prefix)
    cases = [
        ({"name": "diamond", "params": {"gretting": "x"}}, 422, "unknown parameter 'gretting'"),
        ({"name": "nope"}, 404, "no workflow 'nope'"),
        ({"name": "diamond", "revision": "abcdef12"}, 404, "no revision"),
        ({"name": "diamond", "priority": 5000}, 400, "priority"),
        ({"name": "diamond", "extra": 1}, 400, "extra"),
        ({"name": "../etc/passwd"}, 400, "name"),
    ]
    for body, status, fragment in cases:
        r = await client.post("/api/v1/workflow/execute", json=body)
        assert r.status == status, (body, await r.text())
        assert fragment in (await r.json())["error"]["message"], body
    assert await state_snapshot(client, rds, prefix) == before


async def test_status_errors(client: TestClient) -> None:
    r = await client.get("/api/v1/workflow/status", params={"run": "rnope0000"})
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await client.get("/api/v1/workflow/status", params={"run": "../../x"})
    assert r.status == 400 and "run" in (await r.json())["error"]["message"]
    r = await client.get("/api/v1/workflow/status")
    assert r.status == 400
    r = await client.get("/api/v1/no/such/route")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_status_endpoint(client: TestClient) -> None:
    r = await client.get("/api/v1/status")
    body = await r.json()
    assert r.status == 200 and body["redis"]["version"].startswith(("6.", "7."))
