"""Ownership checks: another user's run answers 404, exactly like a missing one (admins see all)."""

from __future__ import annotations

from aiohttp import web

from broker.api.appkeys import ENGINE
from broker.api.auth import request_user
from broker.errors import NotFound


async def check_run_access(request: web.Request, run: str) -> str:
    """The run's owner, if the caller may see it; NotFound otherwise."""
    engine = request.app[ENGINE]
    owner = await engine.redis.hget(engine.keys.run(run), "owner")
    user = request_user(request)
    if owner is None or (not user.admin and owner != user.id):
        raise NotFound(f"no run '{run}'", {"run": run})
    return str(owner)
