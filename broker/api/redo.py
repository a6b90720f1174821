"""Handlers for redo: `POST /api/v1/runs/{run}/redo {"node"}` and `POST /api/v1/workflow/redo
{"run", "node"}` restart a finished run from a node (broker.engine.redo)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.access import check_run_access
from broker.api.apidoc import api_doc
from broker.api.appkeys import ENGINE, REVISIONS
from broker.api.auth import AUDIT_TARGET
from broker.api.codec import convert, read_json
from broker.api.models import RunId
from broker.core.parse import parse_workflow
from broker.engine.redo import load_finished_run, redo_run
from broker.errors import BadRequest

TaskRef = Annotated[str, Meta(min_length=1, max_length=300)]


class RedoBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node: TaskRef  # a node id, a task id, an ensemble, `ens.sub` or a member `ens[2]`


class RedoRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    run: RunId
    node: TaskRef


class RedoResponse(msgspec.Struct, kw_only=True):
    run: str  # the new run
    redo_of: str
    node: str
    name: str
    revision: str
    tasks: int
    rerun: int  # tasks that run again
    reused: int  # tasks written succeeded with their old result


_DOC = (
    "A new run of the same revision and parameters: the node (every copy) and its descendants "
    "run again, other tasks reuse their old results. 404: unknown run or node; 409: the run "
    "has not finished."
)


async def _redo(request: web.Request, req: RedoRequest) -> web.Response:
    request[AUDIT_TARGET] = req.run
    await check_run_access(request, req.run)
    engine = request.app[ENGINE]
    old = await load_finished_run(engine.redis, engine.keys, req.run)
    text, sha = await request.app[REVISIONS].load(
        old.get("workflow", ""), old.get("revision"), owner=old.get("owner", "")
    )
    out = await redo_run(engine, parse_workflow(text), sha, req.run, old, req.node)
    return web.json_response(out, status=201)


async def _body(request: web.Request) -> dict[str, object]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    return body


@api_doc(summary="Redo a finished run from a node", description=_DOC, body=RedoBody,
         responses={201: RedoResponse})
async def redo_by_id(request: web.Request) -> web.Response:
    """POST /api/v1/runs/{run}/redo  {"node": "<node or task id>"}"""
    body = await _body(request)
    if "run" in body:
        raise BadRequest("the run is in the path; remove 'run' from the body", {"field": "run"})
    return await _redo(request, convert({**body, "run": request.match_info["run"]}, RedoRequest))


@api_doc(summary="Redo a finished run from a node", description=_DOC, body=RedoRequest,
         responses={201: RedoResponse})
async def redo(request: web.Request) -> web.Response:
    """POST /api/v1/workflow/redo  {"run": "<run id>", "node": "<node or task id>"}"""
    return await _redo(request, convert(await _body(request), RedoRequest))
