"""Handlers: users (admins create them) and tokens (each user manages their own)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.auth import AUDIT_TARGET, AUTH_STORE, request_user, requires
from broker.api.codec import convert, read_json
from broker.errors import BadRequest, NotFound


class CreateUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    admin: bool = False


class CreateToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    scopes: list[Annotated[str, Meta(max_length=210)]] = msgspec.field(
        default_factory=lambda: ["user"]
    )
    expires_in_s: Annotated[float, Meta(gt=0, le=10 * 365 * 86400)] | None = None
    user: str | None = None  # admins may create a token for another user


async def _body(request: web.Request) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    return body


@requires("admin")
async def create_user(request: web.Request) -> web.Response:
    """Admin: create a user; the response carries its first token (shown once)."""
    req = convert(await _body(request), CreateUser)
    store = request.app[AUTH_STORE]
    user = await store.create_user(req.id, admin=req.admin, created_by=request_user(request).id)
    scopes = ["user", "admin"] if req.admin else ["user"]
    token, info = await store.create_token(req.id, name="initial", scopes=scopes)
    request[AUDIT_TARGET] = req.id
    return web.json_response(
        {"user": user, "token": token, "token_info": msgspec.to_builtins(info)}, status=201
    )


@requires("admin")
async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"users": await request.app[AUTH_STORE].list_users()})


@requires("user", "runner")
async def whoami(request: web.Request) -> web.Response:
    user = request_user(request)
    return web.json_response({"id": user.id, "admin": user.admin, "scopes": sorted(user.scopes)})


@requires("user")
async def create_token(request: web.Request) -> web.Response:
    """Create a token for yourself (or, as an admin, for `user`); the token is shown only here."""
    req = convert(await _body(request), CreateToken)
    caller = request_user(request)
    owner = req.user or caller.id
    if owner != caller.id and not caller.admin:
        raise NotFound(f"no user '{owner}'", {"user": owner})
    if "admin" in req.scopes and not caller.admin:
        raise BadRequest(
            "only an admin can create a token with the admin scope", {"field": "scopes"}
        )
    token, info = await request.app[AUTH_STORE].create_token(
        owner, name=req.name, scopes=req.scopes, expires_in_s=req.expires_in_s
    )
    request[AUDIT_TARGET] = info.id
    return web.json_response({"token": token, **msgspec.to_builtins(info)}, status=201)


@requires("user")
async def list_tokens(request: web.Request) -> web.Response:
    caller = request_user(request)
    owner = request.query.get("user", caller.id)
    if owner != caller.id and not caller.admin:
        raise NotFound(f"no user '{owner}'", {"user": owner})
    infos = await request.app[AUTH_STORE].list_tokens(owner)
    return web.json_response({"tokens": [msgspec.to_builtins(i) for i in infos]})


@requires("user")
async def revoke_token(request: web.Request) -> web.Response:
    caller = request_user(request)
    token_id = request.match_info["id"]
    await request.app[AUTH_STORE].revoke_token(
        token_id, user_id=None if caller.admin else caller.id
    )
    return web.json_response({"id": token_id, "revoked": True})
