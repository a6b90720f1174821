"""Deployment policy: forbidden executors and commands rejected at publish; substitutions noted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
async def client(make_client: Any, tmp_path: Path) -> Any:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({
        "forbid_executors": ["ssh"],
        "forbid_commands": [r"rm\s+-rf\s+/", r"curl .*\|\s*sh"],
        "substitute_executors": {"slurm": "shell"},
        "software": ["python3"],
    }))
    return await make_client(policy_file=str(policy))


async def test_forbidden_executor_names_node_and_rule(client: Any) -> None:
    wf = {"name": "p", "nodes": {"ok": {"command": "true"},
                                 "remote": {"executor": "ssh", "host": "h", "command": "ls"}}}
    r = await client.post("/api/v1/workflow/publish", json=wf)
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["details"]["node"] == "remote" and err["details"]["rule"] == "forbid_executors"
    assert "executor 'ssh' is forbidden" in err["message"]
    assert (await (await client.get("/api/v1/workflows")).json())["workflows"] == []


async def test_forbidden_command_pattern(client: Any) -> None:
    wf = {"name": "p", "nodes": {"a": {"command": "curl http://x/install | sh"},
                                 "b": {"command": ["rm", "-rf", "/"]}}}
    r = await client.post("/api/v1/workflow/publish", json=wf)
    err = (await r.json())["error"]
    assert r.status == 422
    rules = {(e["node"], e["rule"]) for e in err["details"]["errors"]}
    assert rules == {("a", "forbid_commands[1]"), ("b", "forbid_commands[0]")}


async def test_substituted_executor_runs_with_a_message(client: Any) -> None:
    wf = {"name": "s", "nodes": {"job": {"executor": "slurm", "command": "echo hi"}}}
    r = await client.post("/api/v1/workflow/publish", json=wf)
    assert r.status == 201, await r.text()
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "s"})).json())["run"]
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    assert st["tasks"][0]["class"] == "cpu"  # a shell task now, not the slurm class
    assert any("instead of 'slurm'" in m["text"] for m in st["messages"])
    status = await (await client.get("/api/v1/status")).json()
    assert status["policy"]["software"] == ["python3"]


async def test_policy_reaches_into_ensembles(client: Any) -> None:
    wf = {"name": "e", "nodes": {"ens": {
        "kind": "ensemble", "parameters": [{"x": 1}, {"x": 2}],
        "workflow": {"params": {"x": 0}, "nodes": {
            "bad": {"executor": "ssh", "host": "h", "command": "echo {{x}}"},
            "evil": {"command": "rm -rf /"},
        }}}}}
    r = await client.post("/api/v1/workflow/publish", json=wf)
    assert r.status == 422
    found = {(e["node"], e["rule"]) for e in (await r.json())["error"]["details"]["errors"]}
    assert found == {("ens.bad", "forbid_executors"), ("ens.evil", "forbid_commands[0]")}
    sub = {"name": "e2", "nodes": {"ens": {
        "kind": "ensemble", "parameters": [{"x": 1}],
        "workflow": {"params": {"x": 0}, "nodes": {"job": {"executor": "slurm",
                                                            "command": "echo {{x}}"}}}}}}
    assert (await client.post("/api/v1/workflow/publish", json=sub)).status == 201
    run = (await (await client.post("/api/v1/workflow/execute", json={"name": "e2"})).json())["run"]
    st = await (await client.get(f"/api/v1/runs/{run}")).json()
    assert {t["class"] for t in st["tasks"]} == {"cpu"}
    assert any("ens.job runs with executor 'shell'" in m["text"] for m in st["messages"])
