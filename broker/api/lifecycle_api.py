"""Handlers for a run's lifecycle: PATCH params of a `new` run, queue it, results, messages,
delete (routes /api/v1/runs/{run}/…)."""

from __future__ import annotations

import json

from aiohttp import web

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE, REVISIONS, SETTINGS
from broker.api.auth import AUDIT_TARGET
from broker.api.codec import convert, read_json
from broker.api.models import PatchRun, RunRequest
from broker.core.expand import expand
from broker.core.parse import parse_workflow
from broker.engine import queries
from broker.engine.lifecycle import delete_finished_run, require_state, set_new_run_params
from broker.errors import BadRequest


async def _run_id(request: web.Request) -> str:
    run = convert({"run": request.match_info["run"]}, RunRequest).run
    await check_run_access(request, run)
    request[AUDIT_TARGET] = run
    return run


async def patch_run(request: web.Request) -> web.Response:
    """Change the parameter overrides (and priority) of a run that is still `new`."""
    run = await _run_id(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    req = convert(body, PatchRun)
    engine = request.app[ENGINE]
    h = await require_state(engine.redis, engine.keys, run, "new")
    text, _ = await request.app[REVISIONS].load(h["workflow"], h["revision"])
    merged = {**json.loads(h.get("params") or "{}"), **req.params}
    expand(
        parse_workflow(text), merged, req.priority, max_tasks=request.app[SETTINGS].max_tasks
    )  # validates the new overrides
    await set_new_run_params(engine.redis, engine.keys, run, merged, req.priority)
    return web.json_response(await engine.run_status(run, with_tasks=False))


async def queue_run(request: web.Request) -> web.Response:
    """Expand and queue a `new` run with its current parameters."""
    run = await _run_id(request)
    engine = request.app[ENGINE]
    h = await require_state(engine.redis, engine.keys, run, "new")
    text, _ = await request.app[REVISIONS].load(h["workflow"], h["revision"])
    priority = int(h["priority_override"]) if h.get("priority_override") else None
    plan = expand(
        parse_workflow(text),
        json.loads(h.get("params") or "{}"),
        priority,
        max_tasks=request.app[SETTINGS].max_tasks,
    )
    meta = {"workflow": h["workflow"], "revision": h["revision"], "owner": h.get("owner", "")}
    await engine.submit(plan, meta, run_id=run)
    return web.json_response(await engine.run_status(run, with_tasks=False))


async def results(request: web.Request) -> web.Response:
    """Every succeeded task's result; marks the run's results as fetched."""
    run = await _run_id(request)
    engine = request.app[ENGINE]
    out = await queries.get_results(engine.redis, engine.keys, run)
    state = await engine.redis.hget(engine.keys.run(run), "state")
    if state in ("succeeded", "failed", "cancelled"):
        await engine.redis.hset(engine.keys.run(run), "results_fetched", 1)
    return web.json_response({"run": run, "state": state, "results": out})


async def messages(request: web.Request) -> web.Response:
    run = await _run_id(request)
    engine = request.app[ENGINE]
    return web.json_response(
        {"run": run, "messages": await queries.get_messages(engine.redis, engine.keys, run)}
    )


async def delete_run(request: web.Request) -> web.Response:
    run = await _run_id(request)
    engine = request.app[ENGINE]
    force = request.query.get("force", "").lower() in ("1", "true", "yes")
    await delete_finished_run(engine.redis, engine.keys, run, force=force)
    return web.json_response({"run": run, "deleted": True})
