"""Decoding request bodies and arguments at the edge; errors name the field."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from broker.core.parse import load_document
from broker.errors import BadRequest

T = TypeVar("T")


def _validation_error(e: msgspec.ValidationError) -> BadRequest:
    text = str(e)
    message, _, path = text.rpartition(" - at ")
    if not message:
        message, path = text, "$"
    path = path.strip("`")
    field = path[2:] if path.startswith("$.") else path
    return BadRequest(
        f"field '{field}': {message}" if field != "$" else message, {"path": path, "field": field}
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body (empty body → {}); invalid JSON → 400 naming line and column."""
    raw = await request.read()
    if not raw.strip():
        return {}
    return load_document(raw, "json")


def convert(obj: Any, typ: type[T]) -> T:
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as e:
        raise _validation_error(e) from e


async def read_args(request: web.Request, typ: type[T]) -> T:
    """Arguments from the query string (GET) or the JSON body (POST), typed."""
    if request.method == "GET":
        args: dict[str, Any] = {}
        for k, v in request.query.items():
            args[k] = v.lower() not in ("0", "false", "no") if k == "tasks" else v
        return convert(args, typ)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", {"path": "$"})
    return convert(body, typ)
