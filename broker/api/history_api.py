"""Handlers: archived run history from SQLite (list/filter/paginate; attempts of one run)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE
from broker.api.auth import request_user
from broker.api.history_keys import DB
from broker.engine import estimates
from broker.errors import BadRequest, NotFound

RUN_COLUMNS = ("id", "workflow", "revision", "owner", "state", "priority", "params", "created_at",
               "started_at", "finished_at", "total", "counts", "reason", "archived_at")


def _time_ms(name: str, text: str | None) -> int | None:
    """A bound given as ms since the epoch or as ISO-8601."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as e:
        raise BadRequest(f"argument '{name}' must be ms since the epoch or ISO-8601 time",
                         {"field": name}) from e


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(request.query.get(name, default))))
    except ValueError as e:
        raise BadRequest(f"argument '{name}' must be an integer", {"field": name}) from e


def _row(r: Any) -> dict[str, Any]:
    out = {k: r[k] for k in RUN_COLUMNS}
    out["params"] = json.loads(out["params"] or "{}")
    out["counts"] = json.loads(out["counts"] or "{}")
    return out


async def list_history(request: web.Request) -> web.Response:
    """`?workflow=&state=&owner=&since=&until=&limit=&offset=`; non-admins see only their own."""
    user = request_user(request)
    q = request.query
    where, args = [], []
    owner = q.get("owner") if user.admin else user.id
    for column, value in (("owner", owner), ("workflow", q.get("workflow")),
                          ("state", q.get("state"))):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    since, until = _time_ms("since", q.get("since")), _time_ms("until", q.get("until"))
    if since is not None:
        where.append("created_at >= ?")
        args.append(since)
    if until is not None:
        where.append("created_at < ?")
        args.append(until)
    limit = _int(request, "limit", 50, 1, 500)
    offset = _int(request, "offset", 0, 0, 10**9)
    sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    async with request.app[DB].execute(sql, [*args, limit + 1, offset]) as cur:
        rows = await cur.fetchall()
    more = len(rows) > limit
    return web.json_response({"runs": [_row(r) for r in rows[:limit]], "offset": offset,
                              "limit": limit, "more": more})


async def _check_access(request: web.Request, run: str) -> None:
    """Like check_run_access, also for runs that only SQLite still knows (expired from Redis)."""
    async with request.app[DB].execute("SELECT owner FROM runs WHERE id = ?", (run,)) as cur:
        row = await cur.fetchone()
    if row is None:
        await check_run_access(request, run)
        return
    user = request_user(request)
    if not user.admin and row["owner"] != user.id:
        raise NotFound(f"no run '{run}'", {"run": run})


async def run_attempts(request: web.Request) -> web.Response:
    """Every recorded attempt of every task of one run (archived or still in Redis)."""
    run = request.match_info["run"]
    await _check_access(request, run)
    async with request.app[DB].execute(
        "SELECT task, node, attempt, state, runner, started_at, finished_at, duration_ms,"
        " exit_code, reason FROM attempts WHERE run = ? ORDER BY task, attempt", (run,)
    ) as cur:
        rows = await cur.fetchall()
    return web.json_response({"run": run, "attempts": [dict(r) for r in rows]})


async def run_eta(request: web.Request) -> web.Response:
    """Expected start/finish per task and the run's ETA (list-scheduling simulation)."""
    engine = request.app[ENGINE]
    run = request.match_info["run"]
    await check_run_access(request, run)
    return web.json_response(await estimates.run_eta(engine.redis, engine.keys,
                                                     request.app[DB], run))
