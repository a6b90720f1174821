"""Helpers of the websocket tests (no tests here): users, runs and sockets on the real app."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_user(client: TestClient, uid: str) -> str:
    """Create a user as the admin (`client.token`). → its token."""
    r = await client.post("/api/v1/users", json={"id": uid}, headers=auth(client.token))
    assert r.status == 201, await r.text()
    return str((await r.json())["token"])


async def start_run(client: TestClient, token: str, wf: dict[str, Any]) -> str:
    """Publish the workflow and execute it as that user. → the run id."""
    r = await client.post("/api/v1/workflow/publish", json=wf, headers=auth(token))
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/workflow/execute", json={"name": wf["name"]},
                          headers=auth(token))
    assert r.status == 201, await r.text()
    return str((await r.json())["run"])


async def open_socket(client: TestClient, token: str) -> aiohttp.ClientWebSocketResponse:
    """A websocket of that user, past its hello."""
    ws = await client.ws_connect(f"/api/v1/ws?token={token}")
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    return ws
