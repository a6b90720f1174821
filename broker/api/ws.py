"""`GET /api/v1/ws`: the live channel, one websocket per browser tab.

The token is checked by the auth middleware (header, or `?token=` since browsers cannot set
headers on a websocket). A browser's `Origin` must be this broker's own origin: anything else is
refused with 403 before the handshake. The socket then receives small deltas from the hub
(`{type, run, node, state, attempt, ts}`), first a `hello` naming this broker, so the UI can
resync from REST after every (re)connect. A client may follow task logs on the same socket
(`follow_log` / `unfollow_log` messages: broker/api/ws_logs.py); other messages get an error
frame. Frames from the hub and from log follows never interleave (one send lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from broker.api.appkeys import ENGINE
from broker.api.auth import request_user
from broker.api.errors import error_response
from broker.api.hub import HUB, Delta, Subscriber, encode
from broker.api.ws_logs import LogFollows

logger = logging.getLogger(__name__)

PATH = "/api/v1/ws"
BATCH = 200  # deltas sent in one frame when a client lags behind
HEARTBEAT_S = 20.0
CLOSE_TIMEOUT_S = 2.0
SLOW_CLIENT = 4008  # close code: the client fell too far behind; reconnect and resync

SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey(
    "websockets", weakref.WeakSet
)


def same_origin(request: web.Request) -> bool:
    """No Origin (not a browser) or the broker's own host (as the client, or a reverse proxy's
    X-Forwarded-Host, names it); a foreign page is refused."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    hosts = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded:
        hosts.add(forwarded.split(",")[0].strip().lower())
    return urlsplit(origin).netloc.lower() in hosts


class _Sender:
    """One socket's sends, serialised: the hub pump and log follows share the socket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()

    async def text(self, data: str) -> None:
        async with self.lock:
            await self.ws.send_str(data)

    async def json(self, obj: dict[str, object]) -> None:
        await self.text(json.dumps(obj, separators=(",", ":")))


async def _pump(sub: Subscriber, sender: _Sender) -> None:
    """Queue → socket; batches what has piled up. Returns when the hub dropped the client."""
    while True:
        first = await sub.queue.get()
        if first is None:
            return
        batch: list[Delta] = [first]
        while len(batch) < BATCH and not sub.queue.empty():
            item = sub.queue.get_nowait()
            if item is None:
                return
            batch.append(item)
        await sender.text(encode(batch))
        sub.sent += len(batch)


async def _dropped(sub: Subscriber) -> None:
    await sub.gone.wait()


async def _read_incoming(ws: web.WebSocketResponse, follows: LogFollows) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.ERROR:
            return
        if msg.type == WSMsgType.TEXT:
            await follows.handle(msg.data)


async def _close(request: web.Request, ws: web.WebSocketResponse, code: int, why: bytes) -> None:
    """Close politely; a client that does not answer in time loses its connection."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=why), CLOSE_TIMEOUT_S)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()


async def websocket(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return error_response(403, "forbidden", "cross-origin websocket refused",
                              {"origin": request.headers.get("Origin", "")})
    hub = request.app[HUB]
    with contextlib.suppress(TimeoutError):  # the reader holds its start position
        await asyncio.wait_for(hub.ready.wait(), CLOSE_TIMEOUT_S)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024)
    await ws.prepare(request)
    user = request_user(request)
    sub = hub.subscribe(user)
    request.app[SOCKETS].add(ws)
    sender = _Sender(ws)
    follows = LogFollows(request.app[ENGINE], user, sender.json)
    tasks: list[asyncio.Task[None]] = []
    try:
        # Subscribed before the hello: whatever the UI refetches after it, later deltas follow.
        await sender.json({"type": "hello", "broker": request.app[ENGINE].broker_id,
                           "user": user.id, "admin": user.admin})
        tasks = [asyncio.create_task(_pump(sub, sender), name="ws-pump"),
                 asyncio.create_task(_read_incoming(ws, follows), name="ws-read"),
                 asyncio.create_task(_dropped(sub), name="ws-dropped")]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if sub.dropped and not ws.closed:
            await _close(request, ws, SLOW_CLIENT, b"too slow: reconnect and resync")
    finally:
        await follows.close()
        hub.unsubscribe(sub)
        request.app[SOCKETS].discard(ws)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await asyncio.gather(*tasks, return_exceptions=True)
    return ws


async def close_websockets(app: web.Application) -> None:
    """on_shutdown: every live socket closes with GOING_AWAY (the UI reconnects and resyncs)."""
    for ws in list(app[SOCKETS]):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"broker shutting down"),
                CLOSE_TIMEOUT_S,
            )


def setup_websockets(app: web.Application) -> None:
    """Register the socket set and the shutdown hook (called by create_app)."""
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_websockets)
