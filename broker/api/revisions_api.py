"""Handlers for workflow documents: publish, get, list (seed routes /api/v1/workflow/*)."""

from __future__ import annotations

import json

from aiohttp import web

from broker.api.appkeys import REVISIONS
from broker.api.codec import convert
from broker.api.models import PublishEnvelope
from broker.core.parse import load_document, to_workflow
from broker.core.validate import resolve
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


async def get_workflow(request: web.Request) -> web.Response:
    name = request.query.get("name") or request.match_info.get("name")
    if not name:
        raise BadRequest("missing argument 'name'", {"field": "name"})
    text, sha = await request.app[REVISIONS].load(name, request.query.get("revision"))
    return web.json_response({"name": name, "revision": sha, "workflow": json.loads(text)})


async def list_workflows(request: web.Request) -> web.Response:
    return web.json_response({"workflows": await request.app[REVISIONS].names()})


