"""Handlers: /api/v1/status and the queue overview."""

from __future__ import annotations

from pathlib import Path

import msgspec
from aiohttp import web

import broker
from broker.api.appkeys import EMBEDDED, ENGINE, POLICY
from broker.api.auth import ANONYMOUS, request_user
from broker.engine import queries


async def status(request: web.Request) -> web.Response:
    """Broker health: Redis, runners, queues. Without a token: only a public minimum."""
    if request_user(request) is ANONYMOUS:
        return web.json_response({"version": broker.__version__, "status": "ok"})
    engine = request.app[ENGINE]
    redis = engine.redis
    info = await redis.info("server")
    runners = await redis.scard(engine.keys.runners())
    active = await redis.scard(engine.keys.active_runs())
    brokers = await redis.hlen(engine.keys.brokers())
    embedded = request.app.get(EMBEDDED)
    return web.json_response(
        {
            "version": broker.__version__,
            "broker_id": engine.broker_id,
            "brokers": brokers,
            "redis": {
                "version": info.get("redis_version"),
                "mode": "embedded" if embedded is not None else "external",
                "cli": embedded.cli_command if embedded is not None else None,
            },
            "runners": runners,
            "active_runs": active,
            "policy": msgspec.to_builtins(request.app[POLICY]),
            "queues": await queries.queue_overview(redis, engine.keys),
            "completions": {
                "applied": engine.completions.applied,
                "ignored": engine.completions.ignored,
            },
        }
    )


async def index(request: web.Request) -> web.FileResponse:
    """The built-in status page (the React UI replaces it when built)."""
    return web.FileResponse(Path(__file__).parent / "static" / "index.html")
