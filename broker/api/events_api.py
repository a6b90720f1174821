"""Handlers: push an event key (`/api/v1/events/push`), waits and recent pushes (`status`).

Event keys are private to their owner (docs/events-and-timers.md#who-may-push-a-key):

* a `user` token pushes the caller's own keys;
* a token with scope `events:<key>` pushes exactly that key, of the user it belongs to (the
  token a user hands to an external system);
* an admin token pushes any user's key: `owner` names the user (default: the admin's own).

The scope needed depends on the key in the body: the route accepts `user` and any
`events:<key>` token (`@requires("user", "events:*")`), and the handler checks the key.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.apidoc import api_doc
from broker.api.appkeys import ENGINE, POLICY, REVISIONS
from broker.api.auth import AUDIT_TARGET, User, request_user, requires
from broker.api.codec import convert, read_json
from broker.api.errors import error_response
from broker.engine.events import DEFAULT_RETAIN_S, Events, Launcher, Pushed, push
from broker.errors import BadRequest, PayloadTooLarge
from broker.spec import EventKey, Workflow

PUSH_PATH = "/api/v1/events/push"
PUSH_ROUTE = ("POST", PUSH_PATH)
MAX_PAYLOAD_BYTES = 256 * 1024  # a payload becomes task results: keep it small


class PushRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: EventKey
    payload: Any = None
    owner: str | None = None  # admins: whose key (default: the caller's)
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,100}$")] | None = None
    retain_s: Annotated[float, Meta(ge=0, le=7 * 86400)] = DEFAULT_RETAIN_S


def events_of(request: web.Request) -> Events:
    engine = request.app[ENGINE]
    return Events(engine.redis, engine.keys, engine.scripts)


def launcher_of(request: web.Request) -> Launcher:
    return Launcher(request.app[ENGINE], request.app[REVISIONS], request.app[POLICY])


def push_refusal(user: User, req: PushRequest) -> str | None:
    """Why `user` may not push `req.key` into `req.owner`'s namespace (None: allowed)."""
    owner = req.owner or user.id
    if user.admin:
        return None
    if owner != user.id:
        return "only an admin can push another user's event keys"
    if user.has("user") or f"events:{req.key}" in user.scopes:
        return None
    return f"this token may not push event key '{req.key}'"


@api_doc(tags=("events",), body=PushRequest, responses={200: Pushed})
@requires("user", "events:*")
async def push_event(request: web.Request) -> web.Response:
    """Deliver `payload` to every task of the owner waiting for `key`; start subscribed runs."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    req = convert(body, PushRequest)
    user = request_user(request)
    refusal = push_refusal(user, req)
    if refusal:
        return error_response(403, "forbidden", refusal,
                              {"key": req.key, "token_scopes": sorted(user.scopes)})
    if len(msgspec.json.encode(req.payload)) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload larger than {MAX_PAYLOAD_BYTES} bytes",
                              {"field": "payload", "limit": MAX_PAYLOAD_BYTES})
    owner = req.owner or user.id
    request[AUDIT_TARGET] = f"{owner}/{req.key}"
    out = await push(events_of(request), launcher_of(request), owner, req.key, req.payload,
                     push_id=req.id, retain_s=req.retain_s)
    return web.json_response(msgspec.to_builtins(out))


@api_doc(tags=("events",))
@requires("user")
async def status(request: web.Request) -> web.Response:
    """Waiting tasks per key and recent pushes: the caller's (admins: everyone's, or `owner`)."""
    user = request_user(request)
    owner: str | None = user.id
    if user.admin:
        owner = request.query.get("owner") or None
    key = request.query.get("key")
    events = events_of(request)
    waiting = await events.waiting(owner)
    recent = await events.recent(owner)
    out: dict[str, Any] = {"owner": owner}
    if key:
        waiting = [w for w in waiting if w["key"] == key]
        recent = [r for r in recent if r["key"] == key]
        if owner is not None:
            out["retained"] = await events.retained(owner, key)
    out.update(waiting=waiting, recent=recent)
    return web.json_response(out)


async def on_publish(request: web.Request, owner: str, wf: Workflow) -> None:
    """Called by `publish`: keep the `on_event` subscription index up to date."""
    await events_of(request).subscribe(owner, wf.name, list(wf.on_event))
