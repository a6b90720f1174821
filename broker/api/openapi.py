"""The OpenAPI 3.1 document (`GET /api/v1/openapi.json`) and the docs page (`GET /api/docs`).

The document is built from the application's router, so every registered route appears:
path parameters come from the path, the summary from the handler's docstring, security from
auth.PUBLIC. Request and response schemas come from msgspec types named in per-handler
metadata (broker.api.apidoc; the seed handlers are described in broker.api.route_docs).
"""

from __future__ import annotations

import functools
import inspect
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import AbstractRoute

import broker
from broker.api import route_docs
from broker.api.apidoc import HTML, JSON, RouteDoc, api_doc, doc_of
from broker.api.auth import PUBLIC, PUBLIC_PREFIXES
from broker.api.responses import ErrorBody

REF = "#/components/schemas/{name}"
STATIC = Path(__file__).parent / "static"
ANY_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def route_path(route: AbstractRoute) -> str | None:
    """The route's path template (`/api/v1/runs/{run}`), or None for an unnamed resource."""
    info = route.resource.get_info() if route.resource is not None else {}
    if "path" in info:
        return str(info["path"])
    if "formatter" in info:
        return str(info["formatter"])
    if "prefix" in info:
        return str(info["prefix"]).rstrip("/") + "/{filename}"
    return None


def operations(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path, handler) of every route; HEAD only where no GET shares the path."""
    found: list[tuple[str, str, Any]] = []
    for route in app.router.routes():
        path = route_path(route)
        if path is not None:
            found.append((route.method.lower(), path, route.handler))
    gets = {p for m, p, _ in found if m == "get"}
    ops: list[tuple[str, str, Any]] = []
    for method, path, handler in found:
        if method == "head" and path in gets:
            continue
        methods = ANY_METHODS if method == hdrs.METH_ANY else (method,)
        ops += [(m, path, handler) for m in methods]
    return ops


def _types(doc: RouteDoc) -> list[Any]:
    out = [t for t in (doc.query, doc.args) if t is not None]
    if doc.body is not None:
        out += list(doc.body) if isinstance(doc.body, tuple) else [doc.body]
    out += [t for t in doc.responses.values() if t is not None]
    return out


@functools.lru_cache(maxsize=8)
def components(types: tuple[Any, ...]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """(type → schema or $ref, components/schemas) for the given types."""
    schemas, comps = msgspec.json.schema_components(types, ref_template=REF)
    return dict(zip(types, schemas, strict=True)), comps


def _struct_fields(typ: Any, comps: dict[str, Any], refs: dict[Any, Any]) -> dict[str, Any]:
    """name → (schema, required) of a Struct's fields, from its component."""
    ref = refs[typ].get("$ref", "")
    schema = comps.get(ref.rsplit("/", 1)[-1], refs[typ])
    required = set(schema.get("required", []))
    return {n: (s, n in required) for n, s in schema.get("properties", {}).items()}


def parameters(
    method: str, path: str, doc: RouteDoc | None, comps: dict[str, Any], refs: dict[Any, Any]
) -> list[dict[str, Any]]:
    in_path = _PARAM.findall(path)
    query = None if doc is None else doc.query or (doc.args if method == "get" else None)
    fields = _struct_fields(query, comps, refs) if query is not None else {}
    arg_fields = fields
    if doc is not None and doc.args is not None and method != "get":
        arg_fields = _struct_fields(doc.args, comps, refs)
    out = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": arg_fields.get(p, ({"type": "string"}, True))[0],
        }
        for p in in_path
    ]
    for name, (schema, required) in fields.items():
        if name not in in_path:
            out.append(
                {"name": name, "in": "query", "required": required, "schema": _no_null(schema)}
            )
    return out


def _no_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query argument is absent rather than null: `T | None = None` documents as T."""
    alts = [a for a in schema.get("anyOf", []) if a != {"type": "null"}]
    if "anyOf" not in schema or len(alts) != 1:
        return schema
    out = {**alts[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    if out.get("default", 0) is None:
        del out["default"]
    return out


def _required(kinds: tuple[Any, ...], comps: dict[str, Any], refs: dict[Any, Any]) -> bool:
    """A body is required unless its only type has no required field (empty body = {})."""
    if len(kinds) > 1:
        return True
    ref = refs[kinds[0]].get("$ref", "")
    schema = comps.get(ref.rsplit("/", 1)[-1], refs[kinds[0]])
    return bool(schema.get("required")) or schema.get("type") != "object"


def request_body(
    method: str, doc: RouteDoc | None, comps: dict[str, Any], refs: dict[Any, Any]
) -> dict[str, Any] | None:
    if doc is None:
        return None
    body = doc.body if doc.body is not None else (doc.args if method != "get" else None)
    if body is None:
        return None
    kinds = body if isinstance(body, tuple) else (body,)
    schema = refs[kinds[0]] if len(kinds) == 1 else {"anyOf": [refs[k] for k in kinds]}
    return {
        "required": _required(kinds, comps, refs),
        "content": {t: {"schema": schema} for t in doc.body_types},
    }


def responses(doc: RouteDoc | None, refs: dict[Any, Any]) -> dict[str, Any]:
    error = {"description": "Error", "content": {JSON: {"schema": refs[ErrorBody]}}}
    if doc is None or not doc.responses:
        generic = {"description": "Success", "content": {JSON: {"schema": {"type": "object"}}}}
        return {"2XX": generic, "4XX": error}
    out: dict[str, Any] = {}
    for status, typ in sorted(doc.responses.items()):
        media = JSON if typ is not None else doc.content
        if typ is not None:
            schema = refs[typ]
        else:
            schema = {"type": "object"} if media == JSON else {"type": "string"}
        out[str(status)] = {"description": _reason(status), "content": {media: {"schema": schema}}}
    out["4XX"] = error
    return out


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _summary(handler: Any, doc: RouteDoc | None) -> tuple[str, str | None]:
    text = inspect.getdoc(handler) or ""
    first, _, rest = text.partition("\n")
    summary = (doc.summary if doc and doc.summary else None) or first.strip()
    description = (doc.description if doc and doc.description else None) or rest.strip()
    return summary, description or None


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return parts[0] if parts else "ui"


def _is_public(method: str, path: str) -> bool:
    return (method.upper(), path) in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def operation(
    method: str, path: str, handler: Any, comps: dict[str, Any], refs: dict[Any, Any]
) -> dict[str, Any]:
    doc = doc_of(handler)
    summary, description = _summary(handler, doc)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    op: dict[str, Any] = {
        "operationId": f"{method}_{slug}",
        "summary": summary or f"{method.upper()} {path}",
        "tags": list(doc.tags) if doc and doc.tags else [_tag(path)],
        "parameters": parameters(method, path, doc, comps, refs),
        "responses": responses(doc, refs),
    }
    if description:
        op["description"] = description
    body = request_body(method, doc, comps, refs)
    if body is not None:
        op["requestBody"] = body
    if _is_public(method, path):
        op["security"] = []
    return op


def build_spec(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route registered on `app`."""
    route_docs.register()
    ops = operations(app)
    types: list[Any] = [ErrorBody]
    for _, _, handler in ops:
        doc = doc_of(handler)
        types += _types(doc) if doc is not None else []
    refs, comps = components(tuple(dict.fromkeys(types)))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in ops:
        paths.setdefault(path, {})[method] = operation(method, path, handler, comps, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dagbroker",
            "version": broker.__version__,
            "description": "Workflow broker REST API. Errors are "
            '`{"error": {"code", "message", "details"}}`. Authenticate with '
            "`Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": comps,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


@api_doc(summary="This API as an OpenAPI 3.1 document", tags=("docs",), responses={200: None})
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_spec(request.app))


@api_doc(
    summary="The API reference page (renders the OpenAPI document)",
    tags=("docs",),
    responses={200: None},
    content=HTML,
)
async def docs_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

