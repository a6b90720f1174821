"""Handlers: queue status/clear, runners status/register/cancel/shutdown, admin routes."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import socket
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.access import check_run_access
from broker.api.appkeys import ENGINE
from broker.api.auth import AUDIT_TARGET, AUTH_STORE, request_user, requires
from broker.api.codec import convert, read_json
from broker.core.units import memory_mb
from broker.engine.queue_report import live_runners, queue_report
from broker.errors import BadRequest, NotFound
from broker.wire import SOFTWARE_PATTERN

logger = logging.getLogger(__name__)

SHUTDOWN: web.AppKey[asyncio.Event] = web.AppKey("shutdown", asyncio.Event)
Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]


class ClearQueue(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rclass: Name | None = msgspec.field(default=None, name="class")


class RegisterRunner(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A runner record announced by a script that manages runners (not by a worker).

    `cores`, `memory` (MiB, or "512M", "4G") and `gpus` are what the runner will offer, as a
    worker's --cores/--memory/--gpus; left out, they are unknown (shown as null)."""

    host: Annotated[str, Meta(max_length=255)] = ""
    classes: list[Name] = msgspec.field(default_factory=lambda: ["cpu"])
    slots: Annotated[int, Meta(ge=1, le=100_000)] = 1
    cores: Annotated[float, Meta(gt=0, le=1_000_000)] | None = None
    memory: Annotated[int, Meta(ge=1)] | str | None = None
    gpus: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    executors: list[Name] = msgspec.field(default_factory=lambda: ["shell", "python", "noop"])
    labels: dict[str, str] = {}
    software: list[Annotated[str, Meta(pattern=SOFTWARE_PATTERN)]] = []


class RunnerOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    runner: Name
    run: Annotated[str, Meta(pattern=r"^r[0-9a-z]{4,40}$")] | None = None
    node: Annotated[str, Meta(max_length=300)] | None = None
    drain: bool = True


def registered_resources(req: RegisterRunner) -> dict[str, str]:
    """The runner hash's `cores` / `memory_mb` / `gpus` of what was given (as a worker writes
    them); a memory size that does not parse, or is under 1 MiB, is a 400 naming `memory`."""
    out: dict[str, str] = {}
    if req.cores is not None:
        millicores = math.ceil(round(req.cores * 1000, 6))  # as the worker counts them
        out["cores"] = f"{millicores / 1000:.3f}".rstrip("0").rstrip(".")
    if req.memory is not None:
        try:
            mb = memory_mb(req.memory) or 0
        except ValueError as e:
            raise BadRequest(f"field 'memory': {e}", {"path": "$.memory", "field": "memory"}) from e
        if mb < 1:
            raise BadRequest(f"field 'memory': at least 1 MiB, got {req.memory!r}",
                             {"path": "$.memory", "field": "memory"})
        out["memory_mb"] = str(mb)
    if req.gpus is not None:
        out["gpus"] = str(req.gpus)
    return out


async def _body(request: web.Request, typ: type[Any]) -> Any:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    return convert(body, typ)


async def queue_status(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response({"queues": await queue_report(engine.redis, engine.keys)})


@requires("admin")
async def queue_clear(request: web.Request) -> web.Response:
    """Admin: cancel every ready task (of one class, or of all); their runs are updated."""
    req = await _body(request, ClearQueue)
    engine = request.app[ENGINE]
    if req.rclass:
        classes = [req.rclass]
    else:
        classes = sorted(await engine.redis.smembers(engine.keys.classes()))
    who = request_user(request).id
    cleared = {c: await engine.scripts.clear_queue(c, f"queue cleared by {who}") for c in classes}
    return web.json_response({"cleared": cleared})


@requires("user", "runner")
async def runners_status(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response({"runners": await live_runners(engine.redis, engine.keys)})


@requires("runner", "admin")
async def runners_register(request: web.Request) -> web.Response:
    """A runner is announced: returns its id and a runner-scoped token (shown once).

    The record (state `registered`) is listed by runners/status until a worker started with
    `--id` set to this id takes it over with its own settings; it serves nothing before."""
    req = await _body(request, RegisterRunner)
    resources = registered_resources(req)  # before any write: a bad value changes nothing
    engine = request.app[ENGINE]
    user = request_user(request)
    rid = f"{(req.host or socket.gethostname()).split('.')[0]}-{secrets.token_hex(3)}"
    pipe = engine.redis.pipeline(transaction=True)
    pipe.hset(engine.keys.runner(rid), mapping={
        "host": req.host, "classes": ",".join(req.classes), "slots": req.slots, **resources,
        "executors": ",".join(req.executors), "labels": json.dumps(req.labels, sort_keys=True),
        "software": json.dumps(req.software), "state": "registered", "registered_by": user.id,
    })
    pipe.sadd(engine.keys.registrations(), rid)
    await pipe.execute()
    token, _ = await request.app[AUTH_STORE].create_token(
        user.id, name=f"runner {rid}", scopes=["runner"]
    )
    request[AUDIT_TARGET] = rid
    return web.json_response({"runner": rid, "token": token}, status=201)


async def _control(request: web.Request, runner: str, order: dict[str, str]) -> None:
    engine = request.app[ENGINE]
    if not await engine.redis.exists(engine.keys.runner(runner)):
        raise NotFound(f"no runner '{runner}'", {"runner": runner})
    await engine.redis.xadd(engine.keys.control(runner), order, maxlen=1000, approximate=True)
    request[AUDIT_TARGET] = runner


async def runners_cancel(request: web.Request) -> web.Response:
    """Cancel one running task on a runner (its owner or an admin)."""
    req = await _body(request, RunnerOrder)
    if not req.run or not req.node:
        raise BadRequest("runners/cancel needs run and node", {"field": "run"})
    await check_run_access(request, req.run)
    await _control(request, req.runner, {"op": "cancel", "run": req.run, "node": req.node})
    return web.json_response({"runner": req.runner, "order": "cancel", "run": req.run,
                              "node": req.node})


@requires("admin")
async def runners_shutdown(request: web.Request) -> web.Response:
    """Admin: the runner drains (finishes or hands back its tasks) and stops."""
    req = await _body(request, RunnerOrder)
    await _control(request, req.runner, {"op": "drain" if req.drain else "shutdown"})
    return web.json_response({"runner": req.runner, "order": "shutdown"})


@requires("admin")
async def admin_cancel_all(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    runs = sorted(await engine.redis.smembers(engine.keys.active_runs()))
    done = []
    for run in runs:
        try:
            await engine.cancel(run, f"cancelled by admin {request_user(request).id}")
            done.append(run)
        except Exception as e:  # finished meanwhile
            logger.info("cancel_all: %s: %s", run, e)
    return web.json_response({"cancelled": done})


@requires("admin")
async def admin_shutdown(request: web.Request) -> web.Response:
    """Admin: graceful stop of this broker (stop accepting, finish requests, persist, exit)."""
    stop = request.app.get(SHUTDOWN)
    if stop is None:
        raise BadRequest("this broker was not started by `dagbroker serve`; stop it there")
    asyncio.get_running_loop().call_later(0.2, stop.set)
    return web.json_response({"shutdown": True}, status=202)
