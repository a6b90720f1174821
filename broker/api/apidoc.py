"""Per-route API metadata for the OpenAPI document (broker.api.openapi).

A handler describes its request and responses with `@api_doc(...)`; a route without it still
appears in the document (path parameters, a summary from the docstring, bearer security).

    @api_doc(body=ExecuteRequest, responses={201: ExecuteResponse})
    async def execute(request: web.Request) -> web.Response: ...

Types are msgspec Structs (or any type msgspec can describe); their JSON Schemas go into
`components/schemas`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

JSON = "application/json"
YAML = "application/yaml"
TEXT = "text/plain"
HTML = "text/html"


class RouteDoc(msgspec.Struct, frozen=True, kw_only=True):
    """What the document says about one handler (every route that uses it).

    `args` is a Struct read like `codec.read_args`: query parameters on GET, the JSON body
    otherwise. `body` may be a tuple of types (any of them is accepted). `responses` maps a
    status to a type, or to None for a body that is not JSON (`content` gives its media type).
    """

    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    query: Any = None
    body: Any = None
    body_types: tuple[str, ...] = (JSON,)
    args: Any = None
    responses: Mapping[int, Any] = {}
    content: str = JSON


_ATTR = "_api_doc"
_REGISTRY: dict[Handler, RouteDoc] = {}


def api_doc(**fields: Any) -> Callable[[H], H]:
    """Attach a RouteDoc to a handler (see RouteDoc for the fields)."""
    doc = RouteDoc(**fields)

    def mark(handler: H) -> H:
        setattr(handler, _ATTR, doc)
        return handler

    return mark


def describe(handler: Handler, **fields: Any) -> None:
    """Register a RouteDoc for a handler defined elsewhere (without decorating it)."""
    _REGISTRY[handler] = RouteDoc(**fields)


def doc_of(handler: Handler) -> RouteDoc | None:
    found = getattr(handler, _ATTR, None)
    if isinstance(found, RouteDoc):
        return found
    return _REGISTRY.get(handler)
