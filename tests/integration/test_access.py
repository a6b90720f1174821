"""Authentication and isolation: every route, every kind of caller (invariant 7)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import wait_until

from broker.api.auth import PUBLIC

WF = {"name": "mine", "nodes": {"a": {"executor": "noop"}}}


class Callers:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    async def call(self, who: str, method: str, path: str, json: Any = None) -> Any:
        headers = {} if who == "none" else {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.client.request(method, path, json=json, headers=headers)


async def make_user(client: TestClient, uid: str) -> str:
    r = await client.post("/api/v1/users", json={"id": uid},
                          headers={"Authorization": f"Bearer {client.token}"})
    assert r.status == 201, await r.text()
    return str((await r.json())["token"])


@pytest.fixture
async def callers(make_client: Any) -> Callers:
    client = await make_client()
    tokens = {"admin": client.token}
    tokens["alice"] = await make_user(client, "alice")
    tokens["bob"] = await make_user(client, "bob")
    del client.session.headers["Authorization"]  # every call below names its caller
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    runner = {"name": "ci", "scopes": ["runner"]}
    r = await client.post("/api/v1/tokens", json=runner, headers=alice)
    tokens["runner"] = (await r.json())["token"]
    r = await client.post("/api/v1/tokens", json={"name": "old"}, headers=alice)
    revoked = await r.json()
    await client.delete(f"/api/v1/tokens/{revoked['id']}", headers=alice)
    tokens["revoked"] = revoked["token"]
    r = await client.post("/api/v1/tokens", json={"name": "short", "expires_in_s": 0.05},
                          headers=alice)
    tokens["expired"] = (await r.json())["token"]
    tokens["malformed"] = "dgb_nothex_" + "x" * 43
    c = Callers(client, tokens)

    async def expired() -> bool:
        return (await c.call("expired", "GET", "/api/v1/users/me")).status == 401

    await wait_until(expired, timeout_s=10, what="short token to expire")
    return c


async def alice_run(c: Callers) -> str:
    r = await c.call("alice", "POST", "/api/v1/workflow/publish", WF)
    assert r.status == 201, await r.text()
    r = await c.call("alice", "POST", "/api/v1/workflow/execute", {"name": "mine"})
    assert r.status == 201, await r.text()
    return str((await r.json())["run"])


def route_paths(client: TestClient) -> set[tuple[str, str]]:
    out = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path and route.method != "HEAD":
            out.add((route.method, path))
    return out


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_route_refuses_missing_and_bad_tokens(callers: Callers) -> None:
    routes = route_paths(callers.client)
    assert len(routes) > 10
    for method, path in sorted(routes):
        if (method, path) in PUBLIC or path.startswith("/assets"):
            continue
        for who in ("none", "revoked", "expired", "malformed"):
            r = await callers.call(who, method, concrete(path))
            assert r.status == 401, (who, method, path, r.status, await r.text())
            err = (await r.json())["error"]
            assert err["code"] == "unauthorized"
            assert callers.tokens.get(who, "<none>") not in err["message"]


async def test_public_status_shows_only_a_minimum(callers: Callers) -> None:
    r = await callers.call("none", "GET", "/api/v1/status")
    body = await r.json()
    assert r.status == 200 and set(body) == {"version", "status"}
    r = await callers.call("alice", "GET", "/api/v1/status")
    assert "queues" in await r.json()


RUN_ROUTES = [
    ("GET", "/api/v1/workflow/status?run={run}", None),
    ("POST", "/api/v1/workflow/status", {"run": "{run}"}),
    ("GET", "/api/v1/runs/{run}", None),
    ("POST", "/api/v1/workflow/cancel", {"run": "{run}"}),
    ("POST", "/api/v1/runs/{run}/cancel", None),
    ("GET", "/api/v1/audit?run={run}", None),
]


def fill(value: Any, run: str) -> Any:
    if isinstance(value, str):
        return value.replace("{run}", run)
    if isinstance(value, dict):
        return {k: fill(v, run) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), RUN_ROUTES)
async def test_another_users_run_is_404_like_a_missing_one(
    callers: Callers, method: str, path: str, body: Any
) -> None:
    run = await alice_run(callers)
    other = await callers.call("bob", method, fill(path, run), fill(body, run))
    missing = await callers.call("bob", method, fill(path, "rmissing0000"),
                                 fill(body, "rmissing0000"))
    assert other.status == missing.status == 404, (await other.text(), await missing.text())
    assert (await other.json())["error"]["message"].replace(run, "X") == (
        await missing.json())["error"]["message"].replace("rmissing0000", "X")
    runner = await callers.call("runner", method, fill(path, run), fill(body, run))
    assert runner.status == 403
    # the run is untouched by those attempts
    st = await callers.call("alice", "GET", f"/api/v1/runs/{run}")
    assert (await st.json())["run"]["state"] == "running"
    # owner and admin both reach it
    assert (await callers.call("alice", method, fill(path, run), fill(body, run))).status == 200
    assert (await callers.call("admin", "GET", f"/api/v1/runs/{run}")).status == 200


async def test_run_lists_are_per_owner(callers: Callers) -> None:
    run = await alice_run(callers)
    mine = await (await callers.call("alice", "GET", "/api/v1/runs")).json()
    theirs = await (await callers.call("bob", "GET", "/api/v1/runs")).json()
    everyone = await (await callers.call("admin", "GET", "/api/v1/runs")).json()
    assert run in [r["id"] for r in mine["runs"]]
    assert run not in [r["id"] for r in theirs["runs"]]
    assert run in [r["id"] for r in everyone["runs"]]


async def test_users_and_tokens(callers: Callers) -> None:
    # only admins create users
    r = await callers.call("alice", "POST", "/api/v1/users", {"id": "carol"})
    assert r.status == 403
    r = await callers.call("admin", "POST", "/api/v1/users", {"id": "alice"})
    assert r.status == 409
    r = await callers.call("admin", "POST", "/api/v1/users", {"id": "../etc"})
    assert r.status == 400
    # a user cannot mint an admin token, nor see another user's tokens
    r = await callers.call("alice", "POST", "/api/v1/tokens", {"name": "x", "scopes": ["admin"]})
    assert r.status == 400
    r = await callers.call("alice", "GET", "/api/v1/tokens?user=bob")
    assert r.status == 404
    listed = await (await callers.call("alice", "GET", "/api/v1/tokens")).json()
    assert all("token" not in t and "secret" not in str(t) for t in listed["tokens"])
    # bob cannot revoke alice's token
    tid = listed["tokens"][0]["id"]
    r = await callers.call("bob", "DELETE", f"/api/v1/tokens/{tid}")
    assert r.status == 404
    me = await (await callers.call("alice", "GET", "/api/v1/users/me")).json()
    assert me == {"id": "alice", "admin": False, "scopes": ["user"]}


async def test_audit_records_state_changes(callers: Callers) -> None:
    run = await alice_run(callers)
    await callers.call("alice", "POST", "/api/v1/workflow/cancel", {"run": run})
    trail = await (await callers.call("alice", "GET", f"/api/v1/audit?run={run}")).json()
    actions = [(a["actor"], a["action"], a["status"]) for a in trail["audit"]]
    assert ("alice", "POST /api/v1/workflow/cancel", 200) in actions
    assert ("alice", "POST /api/v1/workflow/execute", 201) in actions
    admin_view = await (await callers.call("admin", "GET", "/api/v1/audit?actor=bob")).json()
    assert all(a["actor"] == "bob" for a in admin_view["audit"])
