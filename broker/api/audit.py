"""Audit trail: every state-changing request (who, what, when, from where, outcome) in SQLite."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from broker.api.auth import AUDIT_TARGET, request_user, requires
from broker.api.history_keys import DB
from broker.errors import BadRequest, BrokerError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READ_ONLY = ("GET", "HEAD", "OPTIONS")


def _target(request: web.Request) -> str | None:
    for key in ("run", "name", "id", "user"):
        if key in request.match_info:
            return request.match_info[key]
    return request.get(AUDIT_TARGET)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in READ_ONLY:
        return await handler(request)
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    except BrokerError as e:  # answered by the error middleware with e.status
        status = e.status
        raise
    finally:
        await record(request, status)


async def record(request: web.Request, status: int, details: dict[str, Any] | None = None) -> None:
    db = request.app.get(DB)
    if db is None:
        return
    try:
        await db.execute(
            "INSERT INTO audit (ts, actor, action, target, status, remote, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(time.time() * 1000),
                request_user(request).id,
                f"{request.method} {request.path}",
                _target(request),
                status,
                request.remote,
                json.dumps(details) if details else None,
            ),
        )
        await db.commit()
    except Exception:
        logger.exception("could not write the audit record for %s %s", request.method, request.path)


@requires("user")
async def list_audit(request: web.Request) -> web.Response:
    """Admins: the whole trail (filter by actor); owners: the records of one of their runs."""
    from broker.api.access import check_run_access

    user = request_user(request)
    run = request.query.get("run")
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError as e:
        raise BadRequest("argument 'limit' must be an integer", {"field": "limit"}) from e
    sql = "SELECT ts, actor, action, target, status, remote, details FROM audit"
    where: list[str] = []
    args: list[Any] = []
    if run:
        await check_run_access(request, run)
        where.append("(target = ? OR target LIKE ?)")  # the run, and its tasks' transitions
        args += [run, f"{run}:%"]
    elif not user.admin:
        where.append("actor = ?")
        args.append(user.id)
    if user.admin and request.query.get("actor"):
        where.append("actor = ?")
        args.append(request.query["actor"])
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    async with request.app[DB].execute(sql, args) as cur:
        rows = await cur.fetchall()
    return web.json_response({"audit": [dict(r) for r in rows]})
