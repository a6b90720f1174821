"""`GET /api/v1/ws` on the real app and a real Redis: token and Origin checks, each user sees
only deltas of runs they may see, and shutdown closes sockets with GOING_AWAY."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient

WF = {"name": "live", "nodes": {"a": {"executor": "noop"}, "b": {"executor": "noop",
                                                                  "after": ["a"]}}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user(client: TestClient, uid: str) -> str:
    r = await client.post("/api/v1/users", json={"id": uid}, headers=_auth(client.token))
    assert r.status == 201, await r.text()
    return str((await r.json())["token"])


async def _run(client: TestClient, token: str) -> str:
    r = await client.post("/api/v1/workflow/publish", json=WF, headers=_auth(token))
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/workflow/execute", json={"name": "live"}, headers=_auth(token))
    assert r.status == 201, await r.text()
    return str((await r.json())["run"])


async def _deltas(ws: aiohttp.ClientWebSocketResponse, until: Any) -> list[dict[str, Any]]:
    """Frames (an object or an array of them) until `until(seen)` holds."""
    seen: list[dict[str, Any]] = []
    while not until(seen):
        msg = await asyncio.wait_for(ws.receive(), 15)
        assert msg.type == WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        seen += frame if isinstance(frame, list) else [frame]
    return seen


async def test_token_and_origin_are_required(make_client: Any) -> None:
    client = await make_client()
    del client.session.headers["Authorization"]
    r = await client.get("/api/v1/ws")
    assert r.status == 401
    host = f"{client.server.host}:{client.server.port}"
    r = await client.get(f"/api/v1/ws?token={client.token}",
                         headers={"Origin": "http://evil.example", "Connection": "Upgrade",
                                  "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "forbidden"
    ws = await client.ws_connect(f"/api/v1/ws?token={client.token}",
                                 headers={"Origin": f"http://{host}"})
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["admin"] is True and hello["broker"]
    await ws.close()


async def test_each_user_sees_only_their_runs(make_client: Any) -> None:
    client = await make_client()
    alice, bob = await _user(client, "alice"), await _user(client, "bob")
    del client.session.headers["Authorization"]
    sockets = {who: await client.ws_connect(f"/api/v1/ws?token={tok}")
               for who, tok in (("admin", client.token), ("alice", alice), ("bob", bob))}
    for ws in sockets.values():
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
    run_a, run_b = await _run(client, alice), await _run(client, bob)

    def has(*runs: str) -> Any:
        return lambda seen: {d.get("run") for d in seen} >= set(runs)

    admin_seen = await _deltas(sockets["admin"], has(run_a, run_b))
    alice_seen = await _deltas(sockets["alice"], has(run_a))
    bob_seen = await _deltas(sockets["bob"], has(run_b))
    assert {d["run"] for d in admin_seen} == {run_a, run_b}
    assert {d["run"] for d in alice_seen} == {run_a}
    assert {d["run"] for d in bob_seen} == {run_b}
    released = [d for d in alice_seen if d["type"] == "run"][0]  # no worker: no task moves
    assert set(released) == {"type", "run", "state", "ts"} and released["state"] == "running"
    # bob's socket gets nothing of alice's even later: one more of bob's runs arrives first
    run_b2 = await _run(client, bob)
    later = await _deltas(sockets["bob"], has(run_b2))
    assert run_a not in {d["run"] for d in later}
    for ws in sockets.values():
        await ws.close()


async def test_shutdown_closes_sockets_with_going_away(make_client: Any) -> None:
    client = await make_client()
    ws = await client.ws_connect(f"/api/v1/ws?token={client.token}")
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    closing = asyncio.create_task(client.server.close())
    msg = await ws.receive(timeout=15)
    await closing
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == WSCloseCode.GOING_AWAY
