"""Handlers: start, list and cancel timers (`/api/v1/timers/*`); each belongs to its caller.

A timer fires once `after_s` seconds from now, once `at` an ISO-8601 time, or on a `cron`
schedule (5 fields, UTC), and then starts a workflow or pushes an event key as its owner
(broker.engine.timers; docs/events-and-timers.md).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.apidoc import api_doc
from broker.api.appkeys import ENGINE, REVISIONS
from broker.api.auth import AUDIT_TARGET, request_user
from broker.api.codec import convert, read_json
from broker.api.history_keys import DB
from broker.core.expand import merge_params
from broker.core.parse import parse_workflow
from broker.engine.timers import (
    Action,
    Kind,
    TimerStore,
    check_cron,
    next_cron,
    parse_at,
    timer_view,
)
from broker.errors import BadRequest

MAX_DELAY_S = 10 * 365 * 86400


class StartTimer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    action: Action
    after_s: Annotated[float, Meta(ge=0, le=MAX_DELAY_S)] | None = None
    at: str | None = None
    cron: Annotated[str, Meta(max_length=200)] | None = None
    name: Annotated[str, Meta(max_length=100)] = ""


class CancelTimer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, Meta(min_length=1, max_length=64)]


def schedule(req: StartTimer, now: int) -> tuple[Kind, str | None, int]:
    """(kind, cron, first fire time in ms) of exactly one of after_s, at, cron."""
    given = [f for f in ("after_s", "at", "cron") if getattr(req, f) is not None]
    if len(given) != 1:
        raise BadRequest("give exactly one of 'after_s', 'at' and 'cron'",
                         {"field": "after_s", "given": given})
    if req.after_s is not None:
        return "after", None, now + int(req.after_s * 1000)
    if req.at is not None:
        return "at", None, parse_at(req.at)
    assert req.cron is not None
    check_cron(req.cron)
    return "cron", req.cron, next_cron(req.cron, now)


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    return body


@api_doc(tags=("timers",), body=StartTimer)
async def start(request: web.Request) -> web.Response:
    """Create a timer owned by the caller; 201 with it (next fire time in ISO and ms)."""
    req = convert(await _body(request), StartTimer)
    user = request_user(request)
    kind, cron, first = schedule(req, int(time.time() * 1000))
    if req.action.execute is not None:  # the workflow must exist; its params be declared
        text, _ = await request.app[REVISIONS].load(req.action.execute.name, owner=user.id)
        merge_params(parse_workflow(text).params, req.action.execute.params)
    timer = await TimerStore(request.app[DB]).create(
        user.id, req.name, req.action, kind, cron, first
    )
    request[AUDIT_TARGET] = timer.id
    request.app[ENGINE].timers.wake.set()
    return web.json_response({"timer": timer_view(timer)}, status=201)


@api_doc(tags=("timers",))
async def status(request: web.Request) -> web.Response:
    """The caller's timers (admins: everyone's, or `owner`'s); `all=1` adds finished ones."""
    user = request_user(request)
    owner: str | None = user.id
    if user.admin:
        owner = request.query.get("owner") or None
    finished = request.query.get("all", "0").lower() in ("1", "true", "yes")
    timers = await TimerStore(request.app[DB]).select(owner, finished)
    return web.json_response({"timers": [timer_view(t) for t in timers]})


async def _cancel(request: web.Request, timer_id: str) -> web.Response:
    user = request_user(request)
    request[AUDIT_TARGET] = timer_id
    timer = await TimerStore(request.app[DB]).cancel(timer_id, None if user.admin else user.id)
    return web.json_response({"timer": timer_view(timer)})


@api_doc(tags=("timers",), body=CancelTimer)
async def cancel(request: web.Request) -> web.Response:
    """Cancel one of your timers (admins: anyone's); 409 if it already finished."""
    req = convert(await _body(request), CancelTimer)
    return await _cancel(request, req.id)


@api_doc(tags=("timers",))
async def cancel_by_id(request: web.Request) -> web.Response:
    """Cancel one of your timers (admins: anyone's); 409 if it already finished."""
    return await _cancel(request, request.match_info["id"])
