"""Handlers: a run's provenance manifest, which run produced a sha256, re-running a run.

Manifests outlive the run in Redis (they are in git), so these answer for expired runs too.
Another user's run or file answers 404 like a missing one (admins see all).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.appkeys import ENGINE, REVISIONS, SETTINGS
from broker.api.auth import AUDIT_TARGET, User, request_user
from broker.api.codec import convert
from broker.api.models import RunRequest
from broker.core.expand import expand
from broker.core.parse import parse_workflow
from broker.errors import NotFound


class LookupArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{64}$")]


def _visible(user: User, owner: str | None) -> bool:
    return owner is not None and (user.admin or owner == user.id)


def _run_id(request: web.Request) -> str:
    return convert({"run": request.match_info["run"]}, RunRequest).run


async def _manifest(request: web.Request, run: str) -> dict[str, Any] | None:
    """The caller's view of the run's manifest; None if it has none yet; 404 if not theirs."""
    engine = request.app[ENGINE]
    user = request_user(request)
    manifest = await engine.provenance.store.read(run)
    owner = manifest["owner"] if manifest else await engine.redis.hget(engine.keys.run(run),
                                                                          "owner")
    if not _visible(user, owner):
        raise NotFound(f"no run '{run}'", {"run": run})
    return manifest


async def run_provenance(request: web.Request) -> web.Response:
    run = _run_id(request)
    manifest = await _manifest(request, run)
    if manifest is None:
        raise NotFound(f"run '{run}' has no provenance yet: it is written when the run ends",
                       {"run": run})
    return web.json_response(manifest)


async def lookup(request: web.Request) -> web.Response:
    """Which run, task and workflow revision produced the content with this sha256."""
    digest = convert(dict(request.query), LookupArgs).sha256.lower()
    user = request_user(request)
    entries = await request.app[ENGINE].provenance.store.lookup(digest)
    mine = [e for e in entries if _visible(user, e.get("owner"))]
    if not mine:
        raise NotFound(f"no known run produced sha256 {digest}", {"sha256": digest})
    return web.json_response({"sha256": digest, "produced_by": mine[::-1]})


async def _recorded(request: web.Request, run: str) -> dict[str, Any]:
    """workflow, revision, owner, params, priority of a run: its manifest, else Redis."""
    manifest = await _manifest(request, run)
    if manifest is not None:
        return manifest
    engine = request.app[ENGINE]
    h = await engine.redis.hgetall(engine.keys.run(run))
    return {
        "workflow": h.get("workflow", ""),
        "revision": h.get("revision", ""),
        "owner": h.get("owner", ""),
        "params": json.loads(h["params"]) if h.get("params") else {},
        "priority": int(h["priority"]) if h.get("priority") else None,
    }


async def rerun(request: web.Request) -> web.Response:
    """A new run of the recorded revision with the recorded parameters and priority."""
    run = _run_id(request)
    old = await _recorded(request, run)
    text, sha = await request.app[REVISIONS].load(
        old["workflow"], old["revision"], owner=old["owner"]
    )
    wf = parse_workflow(text)
    plan = expand(wf, old["params"], old["priority"],
                  max_tasks=request.app[SETTINGS].max_tasks)
    meta = {"workflow": wf.name, "revision": sha, "owner": old["owner"], "rerun_of": run}
    new = await request.app[ENGINE].submit(plan, meta)
    request[AUDIT_TARGET] = new
    return web.json_response(
        {"run": new, "name": wf.name, "revision": sha, "tasks": len(plan.tasks),
         "rerun_of": run},
        status=201,
    )
