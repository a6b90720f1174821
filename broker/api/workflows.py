"""Handlers for runs: execute, status, cancel, list (seed routes /api/v1/workflow/* + /runs)."""

from __future__ import annotations

from aiohttp import web

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE, POLICY, REVISIONS, SETTINGS
from broker.api.auth import AUDIT_TARGET, request_user
from broker.api.codec import convert, read_args, read_json
from broker.api.models import ExecuteRequest, RunRequest
from broker.core.expand import expand
from broker.core.parse import parse_workflow
from broker.engine import queries
from broker.engine.lifecycle import add_messages, create_new_run
from broker.errors import BadRequest


async def execute(request: web.Request) -> web.Response:
    """Expand a workflow revision with parameter overrides into a new run."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    req = convert(body, ExecuteRequest)
    user = request_user(request)
    text, sha = await request.app[REVISIONS].load(req.name, req.revision, owner=user.id)
    policy = request.app[POLICY]
    wf, notices = policy.substitute(parse_workflow(text))
    policy.check(wf)  # the policy may have changed since the revision was published
    settings = request.app[SETTINGS]
    plan = expand(wf, req.params, req.priority, max_tasks=settings.max_tasks)
    meta = {"workflow": wf.name, "revision": sha, "owner": user.id}
    engine = request.app[ENGINE]
    if not req.queue:  # validated above; expanded again when it is queued
        run = await create_new_run(
            engine.redis, engine.keys, meta=meta, params=req.params, priority=req.priority
        )
        request[AUDIT_TARGET] = run
        return web.json_response(
            {
                "run": run,
                "name": wf.name,
                "revision": sha,
                "state": "new",
                "tasks": len(plan.tasks),
            },
            status=201,
        )
    run = await engine.submit(plan, meta)
    await add_messages(engine.redis, engine.keys, run, notices)
    request[AUDIT_TARGET] = run
    return web.json_response(
        {"run": run, "name": wf.name, "revision": sha, "tasks": len(plan.tasks)}, status=201
    )


async def status(request: web.Request) -> web.Response:
    req = await read_args(request, RunRequest)
    await check_run_access(request, req.run)
    return web.json_response(await request.app[ENGINE].run_status(req.run, req.tasks))


async def cancel(request: web.Request) -> web.Response:
    req = await read_args(request, RunRequest)
    request[AUDIT_TARGET] = req.run
    await check_run_access(request, req.run)
    return web.json_response(await request.app[ENGINE].cancel(req.run))


async def run_by_id(request: web.Request) -> web.Response:
    with_tasks = request.query.get("tasks", "1").lower() not in ("0", "false", "no")
    req = convert({"run": request.match_info["run"], "tasks": with_tasks}, RunRequest)
    await check_run_access(request, req.run)
    return web.json_response(await request.app[ENGINE].run_status(req.run, req.tasks))


async def cancel_by_id(request: web.Request) -> web.Response:
    req = convert({"run": request.match_info["run"]}, RunRequest)
    await check_run_access(request, req.run)
    return web.json_response(await request.app[ENGINE].cancel(req.run))


async def list_runs(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError as e:
        raise BadRequest("argument 'limit' must be an integer", {"field": "limit"}) from e
    user = request_user(request)
    owner = request.query.get("owner") if user.admin else user.id
    runs = await queries.list_runs(engine.redis, engine.keys, limit, owner=owner)
    return web.json_response({"runs": runs})
