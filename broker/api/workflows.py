"""Handlers: publish, execute, status, cancel, get, list (the /api/v1/workflow/* seed routes)."""

from __future__ import annotations

import json

from aiohttp import web

from broker.api.appkeys import ENGINE, REVISIONS, SETTINGS
from broker.api.codec import convert, read_args, read_json
from broker.api.models import ExecuteRequest, PublishEnvelope, RunRequest
from broker.core.expand import expand
from broker.core.parse import load_document, parse_workflow, to_workflow
from broker.core.validate import resolve
from broker.engine import queries
from broker.errors import BadRequest

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


async def publish(request: web.Request) -> web.Response:
    """Validate a workflow and commit it; 201 with the commit sha."""
    raw = await request.read()
    fmt = "yaml" if request.content_type in YAML_TYPES else "json"
    doc = load_document(raw, fmt)
    message = request.query.get("message")
    if isinstance(doc, dict) and "workflow" in doc and "nodes" not in doc:
        env = convert(doc, PublishEnvelope)
        doc, message = env.workflow, env.message or message
    wf = to_workflow(doc)
    nodes, _ = resolve(wf)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    sha, changed = await request.app[REVISIONS].save(
        wf.name,
        text,
        author="anonymous",
        message=message or f"publish {wf.name} ({len(nodes)} nodes)",
    )
    return web.json_response(
        {"name": wf.name, "revision": sha, "nodes": len(nodes), "changed": changed}, status=201
    )


async def execute(request: web.Request) -> web.Response:
    """Expand a workflow revision with parameter overrides into a new run."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    req = convert(body, ExecuteRequest)
    text, sha = await request.app[REVISIONS].load(req.name, req.revision)
    wf = parse_workflow(text)
    settings = request.app[SETTINGS]
    plan = expand(wf, req.params, req.priority, max_tasks=settings.max_tasks)
    run = await request.app[ENGINE].submit(
        plan, {"workflow": wf.name, "revision": sha, "owner": "anonymous"}
    )
    return web.json_response(
        {"run": run, "name": wf.name, "revision": sha, "tasks": len(plan.tasks)}, status=201
    )


async def status(request: web.Request) -> web.Response:
    req = await read_args(request, RunRequest)
    return web.json_response(await request.app[ENGINE].run_status(req.run, req.tasks))


async def cancel(request: web.Request) -> web.Response:
    req = await read_args(request, RunRequest)
    return web.json_response(await request.app[ENGINE].cancel(req.run))


async def get_workflow(request: web.Request) -> web.Response:
    name = request.query.get("name") or request.match_info.get("name")
    if not name:
        raise BadRequest("missing argument 'name'", {"field": "name"})
    text, sha = await request.app[REVISIONS].load(name, request.query.get("revision"))
    return web.json_response({"name": name, "revision": sha, "workflow": json.loads(text)})


async def list_workflows(request: web.Request) -> web.Response:
    return web.json_response({"workflows": await request.app[REVISIONS].names()})


async def run_by_id(request: web.Request) -> web.Response:
    with_tasks = request.query.get("tasks", "1").lower() not in ("0", "false", "no")
    req = convert({"run": request.match_info["run"], "tasks": with_tasks}, RunRequest)
    return web.json_response(await request.app[ENGINE].run_status(req.run, req.tasks))


async def cancel_by_id(request: web.Request) -> web.Response:
    req = convert({"run": request.match_info["run"]}, RunRequest)
    return web.json_response(await request.app[ENGINE].cancel(req.run))


async def list_runs(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError as e:
        raise BadRequest("argument 'limit' must be an integer", {"field": "limit"}) from e
    return web.json_response({"runs": await queries.list_runs(engine.redis, engine.keys, limit)})
