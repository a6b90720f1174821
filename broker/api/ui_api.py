"""Endpoints the web UI needs beyond the REST API: the workflow JSON Schema (for the editor's
node form), one task's details, and a range of its log.

A task's log: the lines of `dagb:log:{run}:{node}` when a worker streams them (range fetch by
stream id: `after` → the next `count` lines, `next` to continue), else the output tail the
worker reported with the completion.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import msgspec
from aiohttp import web

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE
from broker.engine import queries
from broker.errors import BadRequest, NotFound
from broker.spec import Workflow

MAX_LINES = 1000
STREAM_ID = r"^\d{1,20}-\d{1,20}$"


@cache
def _schema_json() -> bytes:
    return msgspec.json.encode(msgspec.json.schema(Workflow))


async def workflow_schema(request: web.Request) -> web.Response:
    """`GET /api/v1/ui/schema`: JSON Schema of a workflow document (broker.spec.Workflow)."""
    return web.Response(body=_schema_json(), content_type="application/json",
                        headers={"Cache-Control": "private, max-age=3600"})


async def _task(request: web.Request) -> tuple[str, str, dict[str, Any]]:
    run, task = request.match_info["run"], request.match_info["task"]
    await check_run_access(request, run)
    engine = request.app[ENGINE]
    values = await engine.redis.hmget(engine.keys.task(run, task), *queries.TASK_FIELDS)
    if values[0] is None:
        raise NotFound(f"no task '{task}' in run '{run}'", {"run": run, "task": task})
    view = queries.task_view(task, values, with_tail=True)
    await queries.add_waiting_for(engine.redis, engine.keys, run, [view])
    return run, task, view


async def task_detail(request: web.Request) -> web.Response:
    """`GET /api/v1/runs/{run}/tasks/{task}`: the task (with its output tail) and its node spec."""
    run, _, view = await _task(request)
    engine = request.app[ENGINE]
    spec = await engine.redis.hget(engine.keys.spec(run), view["node"])
    return web.json_response({"run": run, "task": view,
                              "spec": json.loads(spec) if spec else None})


def _count(request: web.Request) -> int:
    try:
        return max(1, min(MAX_LINES, int(request.query.get("count", "200"))))
    except ValueError as e:
        raise BadRequest("argument 'count' must be an integer", {"field": "count"}) from e


async def task_log(request: web.Request) -> web.Response:
    """`GET /api/v1/runs/{run}/tasks/{task}/log?after=<id>&count=`: log lines after `after`."""
    run, task, view = await _task(request)
    after = request.query.get("after", "")
    if after and not re.match(STREAM_ID, after):
        raise BadRequest("argument 'after' must be a stream id like 1700000000000-0",
                         {"field": "after"})
    count = _count(request)
    engine = request.app[ENGINE]
    key = engine.keys.log(run, task)
    start = f"({after}" if after else "-"
    entries = await engine.redis.xrange(key, min=start, max="+", count=count)
    lines = [{"id": i, "ts": int(i.split("-")[0]), "line": f.get("line", "")}
             for i, f in entries]
    out: dict[str, Any] = {"run": run, "task": task, "state": view["state"], "lines": lines,
                           "next": lines[-1]["id"] if lines else (after or None),
                           "streamed": bool(lines) or bool(await engine.redis.exists(key))}
    if not out["streamed"]:
        out["tail"] = view.get("tail", "")
    return web.json_response(out)
