"""events/push and events/status through the real app: who may push, isolation, on_event."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

WAITS = {"name": "waits", "nodes": {"approve": {"executor": "event", "wait_for": "go"},
                                    "after": {"executor": "noop", "after": ["approve"]}}}
PUSH = "/api/v1/events/push"


class Api:
    """Calls as a named caller (the admin, alice, bob, or a token given by name)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tokens: dict[str, str] = {"admin": client.token}

    async def call(self, who: str, method: str, path: str, body: Any = None,
                   status: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who != "none" else {}
        r = await self.client.request(method, path, json=body, headers=headers)
        assert r.status == status, (who, method, path, r.status, await r.text())
        return await r.json()

    async def user(self, uid: str) -> None:
        out = await self.call("admin", "POST", "/api/v1/users", {"id": uid}, status=201)
        self.tokens[uid] = out["token"]

    async def token(self, owner: str, name: str, scopes: list[str]) -> None:
        out = await self.call(owner, "POST", "/api/v1/tokens", {"name": name, "scopes": scopes},
                              status=201)
        self.tokens[name] = out["token"]

    async def run(self, who: str, wf: dict[str, Any]) -> str:
        await self.call(who, "POST", "/api/v1/workflow/publish", wf, status=201)
        out = await self.call(who, "POST", "/api/v1/workflow/execute", {"name": wf["name"]},
                              status=201)
        return str(out["run"])

    async def task_state(self, who: str, run: str, node: str) -> dict[str, Any]:
        st = await self.call(who, "GET", f"/api/v1/runs/{run}")
        return next(t for t in st["tasks"] if t["id"] == node)


@pytest.fixture
async def api(make_client: Any) -> Api:
    client = await make_client()
    del client.session.headers["Authorization"]  # every call names its caller
    a = Api(client)
    await a.user("alice")
    await a.user("bob")
    return a


async def test_push_permissions_and_isolation(api: Api) -> None:
    await api.token("alice", "ext-go", ["events:go"])  # alice's public token for key "go"
    await api.token("alice", "ci", ["runner"])
    run = await api.run("alice", WAITS)
    assert (await api.task_state("alice", run, "approve"))["state"] == "waiting"

    await api.call("none", "POST", PUSH, {"key": "go"}, status=401)
    await api.call("ci", "POST", PUSH, {"key": "go"}, status=403)
    await api.call("ext-go", "POST", PUSH, {"key": "other"}, status=403)
    await api.call("bob", "POST", PUSH, {"key": "go", "owner": "alice"}, status=403)
    await api.call("ext-go", "POST", PUSH, {"key": "go", "owner": "bob"}, status=403)
    out = await api.call("bob", "POST", PUSH, {"key": "go", "payload": "evil"})
    assert (out["owner"], out["delivered"]) == ("bob", 0)  # bob's own "go": nobody waits
    assert (await api.task_state("alice", run, "approve"))["state"] == "waiting"

    out = await api.call("ext-go", "POST", PUSH,
                         {"key": "go", "payload": {"ok": True}, "id": "req-1", "retain_s": 0})
    assert (out["owner"], out["delivered"], out["duplicate"]) == ("alice", 1, False)
    t = await api.task_state("alice", run, "approve")
    assert (t["state"], t["result"]) == ("succeeded", {"ok": True})
    assert (await api.task_state("alice", run, "after"))["state"] == "ready"
    again = await api.call("ext-go", "POST", PUSH, {"key": "go", "payload": 2, "id": "req-1"})
    assert (again["delivered"], again["duplicate"]) == (1, True)
    # an admin reaches alice's keys by naming her
    run2 = await api.run("alice", WAITS)
    out = await api.call("admin", "POST", PUSH, {"key": "go", "owner": "alice"})
    assert out["delivered"] == 1
    assert (await api.task_state("alice", run2, "approve"))["state"] == "succeeded"
    # bad requests
    await api.call("alice", "POST", PUSH, {"key": "no spaces"}, status=400)
    await api.call("alice", "POST", PUSH, {"key": "go", "surprise": 1}, status=400)
    await api.call("alice", "POST", PUSH, {"key": "go", "payload": "x" * 300_000}, status=413)


async def test_status_lists_my_waits_and_pushes_only(api: Api) -> None:
    run = await api.run("alice", WAITS)
    await api.call("bob", "POST", PUSH, {"key": "bobs-key", "retain_s": 0})
    mine = await api.call("alice", "GET", "/api/v1/events/status")
    assert mine["owner"] == "alice"
    assert [(w["key"], [t["run"] for t in w["tasks"]]) for w in mine["waiting"]] == [
        ("go", [run])]
    assert mine["recent"] == []
    theirs = await api.call("bob", "GET", "/api/v1/events/status")
    assert theirs["waiting"] == []
    assert [r["key"] for r in theirs["recent"]] == ["bobs-key"]
    everyone = await api.call("admin", "GET", "/api/v1/events/status")
    assert {w["owner"] for w in everyone["waiting"]} >= {"alice"}
    await api.call("alice", "POST", PUSH, {"key": "go", "payload": 7})
    one = await api.call("alice", "GET", "/api/v1/events/status?key=go")
    assert one["waiting"] == [] and one["recent"][0]["delivered"] == 1
    assert one["retained"]["payload"] == 7  # kept 60 s by default for late waiters


async def test_on_event_starts_the_latest_revision_as_its_owner(api: Api) -> None:
    wf = {"name": "deploy", "on_event": ["release"], "params": {"event": None},
          "nodes": {"a": {"executor": "noop"}}}
    await api.call("alice", "POST", "/api/v1/workflow/publish", wf, status=201)
    await api.call("bob", "POST", PUSH, {"key": "release"})  # bob's key: starts nothing of alice
    assert (await api.call("alice", "GET", "/api/v1/runs"))["runs"] == []

    out = await api.call("alice", "POST", PUSH, {"key": "release", "payload": {"v": 3}})
    (run,) = out["runs"]
    st = await api.call("alice", "GET", f"/api/v1/runs/{run}")
    assert (st["run"]["owner"], st["run"]["params"]) == ("alice", {"event": {"v": 3}})
    # a later revision without the key unsubscribes it
    await api.call("alice", "POST", "/api/v1/workflow/publish", {**wf, "on_event": []},
                   status=201)
    out = await api.call("alice", "POST", PUSH, {"key": "release"})
    assert out["runs"] == [] and out["errors"] == []
    assert len((await api.call("alice", "GET", "/api/v1/runs"))["runs"]) == 1
