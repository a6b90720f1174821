"""Authentication and authorisation at the edge.

Every route needs a token (`Authorization: Bearer dgb_…`) unless it is listed in PUBLIC.
Handlers learn the caller only through `request_user(request)`; a handler that needs another
scope than `user` says so with `@requires(...)`. Tokens are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web

from broker.api.errors import error_response

if TYPE_CHECKING:
    from broker.auth.store import AuthStore

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

AUTH_STORE: web.AppKey[AuthStore] = web.AppKey("auth_store", "AuthStore")  # type: ignore[arg-type]

# (method, path) pairs anyone may call; `/api/v1/status` shows a public minimum without a token.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/api/v1/health/live"),
    ("GET", "/api/v1/health/ready"),
}
# The web UI's static files and page shell (broker/api/static_ui.py); its data needs a token.
PUBLIC_PREFIXES = ("/assets/", "/runs", "/workflows", "/login")


class User(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller."""

    id: str
    admin: bool = False
    scopes: frozenset[str] = frozenset()

    def has(self, scope: str) -> bool:
        """`events:*` matches any `events:<key>` scope (the handler then checks the key)."""
        if scope == "events:*":
            return self.admin or any(s.startswith("events:") for s in self.scopes)
        return scope in self.scopes or (self.admin and scope != "runner")


ANONYMOUS = User(id="-", admin=False, scopes=frozenset())

USER = web.RequestKey("user", User)
TOKEN_ID = web.RequestKey("token_id", str)
AUDIT_TARGET = web.RequestKey("audit_target", str)


def request_user(request: web.Request) -> User:
    return request.get(USER, ANONYMOUS)


def requires(*scopes: str) -> Callable[[H], H]:
    """The handler accepts a token holding any one of `scopes` (default for all: `user`)."""

    def mark(handler: H) -> H:
        handler._scopes = frozenset(scopes)  # type: ignore[attr-defined]
        return handler

    return mark


def _required(request: web.Request) -> frozenset[str]:
    handler: Any = request.match_info.handler
    return getattr(handler, "_scopes", frozenset({"user"}))


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    # Browsers cannot set headers on a websocket: the UI passes the token as a query argument.
    if request.path == "/api/v1/ws":
        return request.query.get("token")
    return None


def _unauthorized(message: str) -> web.Response:
    resp = error_response(401, "unauthorized", message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="dagbroker"'
    return resp


def _is_public(request: web.Request) -> bool:
    return (request.method, request.path) in PUBLIC or request.path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = _bearer(request)
    if token is None:
        if _is_public(request):
            return await handler(request)
        return _unauthorized("missing token: send 'Authorization: Bearer <token>'")
    from broker.auth.store import AuthFailure

    try:
        principal = await request.app[AUTH_STORE].authenticate(token)
    except AuthFailure as e:
        return _unauthorized(f"invalid token: {e}")
    user = User(
        id=principal.user,
        admin=principal.admin and "admin" in principal.scopes,
        scopes=principal.scopes,
    )
    request[USER] = user
    request[TOKEN_ID] = principal.token_id
    needed = _required(request)
    if not _is_public(request) and not any(user.has(s) for s in needed):
        return error_response(
            403,
            "forbidden",
            f"this token lacks the scope for {request.path}",
            {"required_any_of": sorted(needed), "token_scopes": sorted(user.scopes)},
        )
    return await handler(request)
