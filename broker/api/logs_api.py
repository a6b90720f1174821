"""Handlers: a task's live log lines, and a run's artifacts (list, download). Owner only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE, SETTINGS
from broker.artifacts.index import list_artifacts
from broker.artifacts.urls import store_from_url
from broker.errors import BadRequest, NotFound

ARTIFACT_STORE: web.AppKey[Any] = web.AppKey("artifact_store", object)
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def artifact_store_url(settings: Any) -> str:
    return settings.artifacts_url or str(Path(settings.data_dir) / "artifacts")


async def artifacts_ctx(app: web.Application) -> AsyncIterator[None]:
    """The same store the workers upload to (`--artifacts`), for downloads."""
    settings = app[SETTINGS]
    store = store_from_url(artifact_store_url(settings), endpoint_url=settings.s3_endpoint_url,
                           region=settings.aws_region)
    app[ARTIFACT_STORE] = store
    yield
    await store.aclose()


async def task_log(request: web.Request) -> web.Response:
    """`?after=<id>&limit=N`: log lines after a stream id (follow by passing back `last_id`)."""
    run, task = request.match_info["run"], request.match_info["task"]
    await check_run_access(request, run)
    engine = request.app[ENGINE]
    state = await engine.redis.hget(engine.keys.task(run, task), "state")
    if state is None:
        raise NotFound(f"no task '{task}' in run '{run}'", {"run": run, "task": task})
    after = request.query.get("after", "0-0")
    if not _STREAM_ID.match(after):
        raise BadRequest("argument 'after' must be a log entry id like 1700000000000-0",
                         {"field": "after"})
    try:
        limit = max(1, min(5000, int(request.query.get("limit", "1000"))))
    except ValueError as e:
        raise BadRequest("argument 'limit' must be an integer", {"field": "limit"}) from e
    entries = await engine.redis.xrange(engine.keys.log(run, task), f"({after}", "+", count=limit)
    lines = [{"id": eid, "attempt": int(f.get("attempt", 0) or 0), "line": f.get("line", "")}
             for eid, f in entries]
    return web.json_response({"run": run, "task": task, "state": state, "lines": lines,
                              "last_id": lines[-1]["id"] if lines else after})


async def run_artifacts(request: web.Request) -> web.Response:
    run = request.match_info["run"]
    await check_run_access(request, run)
    engine = request.app[ENGINE]
    records = await list_artifacts(engine.redis, engine.keys, run)
    return web.json_response({"run": run, "artifacts": [msgspec.to_builtins(r) for r in records]})


async def download_artifact(request: web.Request) -> web.StreamResponse:
    """The bytes of one of the run's artifacts; only hashes in the run's index are served."""
    run, sha = request.match_info["run"], request.match_info["sha256"]
    await check_run_access(request, run)
    if not _SHA.match(sha):
        raise BadRequest("an artifact is named by its sha256 (64 hex digits)", {"field": "sha256"})
    engine = request.app[ENGINE]
    records = [r for r in await list_artifacts(engine.redis, engine.keys, run) if r.sha256 == sha]
    if not records:
        raise NotFound(f"no artifact {sha[:12]}… in run '{run}'", {"run": run, "sha256": sha})
    store = request.app[ARTIFACT_STORE]
    size = await store.size(sha)
    if size is None:
        raise NotFound(f"artifact {sha[:12]}… is indexed but not in the store",
                       {"run": run, "sha256": sha})
    name = records[0].name.rsplit("/", 1)[-1]
    resp = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{name}"', "ETag": f'"{sha}"'})
    await resp.prepare(request)
    async for chunk in store.iter_bytes(sha):
        await resp.write(chunk)
    await resp.write_eof()
    return resp
