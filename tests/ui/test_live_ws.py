"""`GET /api/v1/ws` on the real app and a real Redis: token and Origin checks, each user sees
only deltas of runs they may see, and shutdown closes sockets with GOING_AWAY."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import redis.asyncio as aredis
from aiohttp import WSCloseCode, WSMsgType
from helpers import wait_until

from broker.api.hub import HUB
from broker.keys import Keys
from ui.ws_support import new_user, start_run

WF = {"name": "live", "nodes": {"a": {"executor": "noop"}, "b": {"executor": "noop",
                                                                  "after": ["a"]}}}


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
    alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
    del client.session.headers["Authorization"]
    sockets = {who: await client.ws_connect(f"/api/v1/ws?token={tok}")
               for who, tok in (("admin", client.token), ("alice", alice), ("bob", bob))}
    for ws in sockets.values():
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
    run_a, run_b = await start_run(client, alice, WF), await start_run(client, bob, WF)

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
    run_b2 = await start_run(client, bob, WF)
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


async def _stalled_socket(host: str, port: int, token: str) -> tuple[Any, Any]:
    """A websocket client that completes the handshake, then never reads (small buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write((f"GET /api/v1/ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_stalled_client_is_dropped_and_the_others_get_everything(
    make_client: Any, rds: aredis.Redis, keys: Keys
) -> None:
    client = await make_client()
    hub = client.app[HUB]
    hub.queue_size = 20  # new subscribers get a short queue
    fast = await client.ws_connect(f"/api/v1/ws?token={client.token}")
    assert (await fast.receive_json(timeout=10))["type"] == "hello"
    _, stalled = await _stalled_socket(client.server.host, client.server.port, client.token)
    await wait_until(lambda: _true(len(hub.subscribers) == 2), timeout_s=10,
                     what="both clients subscribed")
    n, pad = 3000, "x" * 2000  # ~6 MB: more than the socket buffers hold
    for start in range(0, n, 500):
        pipe = rds.pipeline(transaction=False)
        for i in range(start, start + 500):
            pipe.xadd(keys.events(), {"ts": str(i), "kind": "run", "run": "rx1",
                                      "state": "running", "reason": pad})
        await pipe.execute()
    got = await _deltas(fast, lambda seen: len(seen) >= n)
    assert [d["ts"] for d in got] == list(range(n))  # all of them, in order
    await wait_until(lambda: _true(len(hub.subscribers) == 1), timeout_s=15,
                     what="the stalled client to be dropped")
    stalled.close()
    await fast.close()


async def _true(value: bool) -> bool:
    return value
