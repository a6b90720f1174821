"""Handlers for workflow documents: publish (body or URL), get, list, history, diff, delete.

Every workflow belongs to an owner (the caller who published it). A caller addresses their
own workflows; an admin may name another owner with `owner`. Anyone else's workflow answers
404 with the same message as a missing one.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from broker.api.appkeys import NODEWORKS_PLUGINS, POLICY, REVISIONS, SETTINGS
from broker.api.auth import User, request_user
from broker.api.codec import convert, read_args
from broker.api.events_api import on_publish
from broker.api.models import PublishEnvelope
from broker.core.parse import load_document, to_workflow
from broker.core.validate import resolve
from broker.errors import BadRequest, BrokerError, NotFound
from broker.fetch import fetch_document
from broker.nodeworks.convert import CONTENT_TYPE as CHART_TYPE
from broker.nodeworks.convert import FORMAT as CHART_FORMAT
from broker.nodeworks.convert import convert_chart
from broker.nodeworks.export import export_chart
from broker.revisions import RevisionStore
from broker.spec import NAME_PATTERN

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
Rev = Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{7,40}$")]


class WorkflowArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    revision: Rev | None = None
    owner: str | None = None


class HistoryArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    owner: str | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    cursor: Rev | None = None


class DiffArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    owner: str | None = None
    from_: Rev | None = msgspec.field(default=None, name="from")
    to: Rev | None = None


class DeleteArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    owner: str | None = None
    message: str | None = None


def target_owner(user: User, owner: str | None, name: str) -> str:
    """Whose workflow `name` is meant: the caller's, or (admins only) the named owner's."""
    if not owner or owner == user.id:
        return user.id
    if user.admin:
        return owner
    raise NotFound(f"no workflow '{name}'", {"name": name})


def _query(request: web.Request, *names: str) -> dict[str, Any]:
    """Query arguments, with `limit` as an integer (typed Structs reject text)."""
    args: dict[str, Any] = dict(request.query)
    if "name" in request.match_info:
        args["name"] = request.match_info["name"]
    for key in names:
        if key in args:
            try:
                args[key] = int(args[key])
            except ValueError as e:
                raise BadRequest(f"argument '{key}' must be an integer", {"field": key}) from e
    return args


def _base(request: web.Request, envelope_base: str | None) -> str | None:
    """The revision an edit is based on: `If-Match` header, the envelope's or the query's
    `base`."""
    envelope_base = envelope_base or request.query.get("base") or None
    header = request.headers.get("If-Match", "").strip()
    if header.startswith("W/"):
        header = header[2:]
    header = header.strip('"')
    if header == "*":
        header = ""
    if header and envelope_base and header != envelope_base:
        raise BadRequest("If-Match and base name different revisions", {"field": "base"})
    base = header or envelope_base or None
    if base is not None and not re.match(r"^[0-9a-fA-F]{7,40}$", base):
        raise BadRequest(f"base revision {base!r} is not a commit sha (7 to 40 hex digits)",
                         {"field": "base"})
    return base


def _envelope(doc: Any) -> PublishEnvelope:
    """A bare workflow document, or the envelope {workflow | url, message, base}."""
    is_env = isinstance(doc, dict) and "nodes" not in doc and ("workflow" in doc or "url" in doc)
    if not is_env:
        return PublishEnvelope(workflow=doc)
    env = convert(doc, PublishEnvelope)
    if (env.workflow is None) == (env.url is None):
        raise BadRequest("give exactly one of 'workflow' and 'url'", {"field": "workflow"})
    return env


async def _fetch(request: web.Request, store: RevisionStore, owner: str, url: str
                 ) -> tuple[Any, dict[str, Any]]:
    """(document, new fetch state) of `url`; a 304 reuses the revision fetched last time."""
    settings = request.app[SETTINGS]
    state = await store.fetch_state(owner, url) or {}
    got = await fetch_document(
        url,
        etag=state.get("etag"),
        last_modified=state.get("last_modified"),
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.fetch_timeout_s,
    )
    if got.status == 304:
        try:
            text, _ = await store.load(state["name"], state["revision"], owner=owner)
            return json.loads(text), {**state, "status": 304}
        except NotFound:  # the remembered revision is gone: fetch it whole
            got = await fetch_document(url, max_bytes=settings.max_body_bytes,
                                       timeout_s=settings.fetch_timeout_s)
    try:
        doc = load_document(got.body, got.format)
    except BrokerError as e:
        e.details["url"] = url
        raise
    fresh = {"etag": got.etag, "last_modified": got.last_modified, "status": 200,
             "sha256": hashlib.sha256(got.body).hexdigest()}
    return doc, fresh


def _is_chart(request: web.Request) -> bool:
    return (request.content_type == CHART_TYPE
            or request.query.get("format", "").lower() == CHART_FORMAT)


async def _chart_document(request: web.Request, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A Nodeworks chart → (native workflow document, the original chart bytes)."""
    name = request.query.get("name")
    if not name or not re.match(NAME_PATTERN, name):
        raise BadRequest("publishing a Nodeworks chart needs ?name=<workflow name>",
                         {"field": "name"})
    converted = convert_chart(raw, name=name, plugins=request.app[NODEWORKS_PLUGINS])
    return converted.workflow, converted.original


async def _kept_chart(store: RevisionStore, name: str, owner: str) -> dict[str, bytes]:
    """The chart saved with the previous revision, kept so an export can merge edits into it."""
    try:
        data, _ = await store.load_file(name, "nc", owner=owner)
    except NotFound:
        return {}
    return {"nc": data}


async def publish(request: web.Request) -> web.Response:
    """Validate a workflow (given, a Nodeworks chart, or fetched from `url`) and commit it;
    201 with the sha."""
    user = request_user(request)
    store = request.app[REVISIONS]
    raw = await request.read()
    extra: dict[str, bytes] | None = None
    if _is_chart(request):
        chart_doc, original = await _chart_document(request, raw)
        doc: Any = {"workflow": chart_doc}
        extra = {"nc": original}
    else:
        doc = load_document(raw, "yaml" if request.content_type in YAML_TYPES else "json")
    env = _envelope(doc)
    base = _base(request, env.base)
    message = env.message or request.query.get("message")
    fetch: dict[str, Any] | None = None
    if env.url is not None:
        doc, fetch = await _fetch(request, store, user.id, env.url)
    else:
        doc = env.workflow
    try:
        wf = to_workflow(doc)
        nodes, _ = resolve(wf)
        request.app[POLICY].check(wf)
    except BrokerError as e:
        if env.url is not None:
            e.details["url"] = env.url
        raise
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if extra is None:
        extra = await _kept_chart(store, wf.name, user.id)
    saved = await store.save(wf.name, text, owner=user.id, author=user.id, message=message,
                             base=base, source=env.url, extra_files=extra)
    await on_publish(request, user.id, wf)  # the on_event subscription index
    out: dict[str, Any] = {"name": wf.name, "owner": user.id, "revision": saved.revision,
                           "nodes": len(nodes), "changed": saved.changed}
    if saved.message:
        out["message"] = saved.message
    if env.url is not None and fetch is not None:
        await store.set_fetch_state(user.id, env.url, {
            **{k: v for k, v in fetch.items() if k != "status"},
            "name": wf.name, "revision": saved.revision})
        out["url"] = env.url
        out["fetch_status"] = fetch["status"]
    return web.json_response(out, status=201)


async def get_workflow(request: web.Request) -> web.Response:
    query = _query(request)
    fmt = str(query.pop("format", "native")).lower()
    if fmt not in ("native", CHART_FORMAT):
        raise BadRequest(f"unknown format {fmt!r} (native or nodeworks)", {"field": "format"})
    args = convert(query, WorkflowArgs)
    user = request_user(request)
    owner = target_owner(user, args.owner, args.name)
    store = request.app[REVISIONS]
    text, sha = await store.load(args.name, args.revision, owner=owner)
    if fmt == CHART_FORMAT:
        try:
            original: bytes | None = (await store.load_file(args.name, "nc", sha, owner=owner))[0]
        except NotFound:
            original = None
        body = export_chart(json.loads(text), original)
        return web.Response(body=body, content_type=CHART_TYPE, headers={"ETag": f'"{sha}"'})
    return web.json_response(
        {"name": args.name, "owner": owner, "revision": sha, "workflow": json.loads(text)},
        headers={"ETag": f'"{sha}"'},
    )


async def list_workflows(request: web.Request) -> web.Response:
    user = request_user(request)
    owner = request.query.get("owner") or user.id
    if owner != user.id and not user.admin:
        listed = []  # nobody else's workflows are visible
    else:
        listed = await request.app[REVISIONS].names(owner)
    return web.json_response({
        "owner": owner,
        "workflows": [w.name for w in listed],
        "items": msgspec.to_builtins(listed),
    })


async def history(request: web.Request) -> web.Response:
    args = convert(_query(request, "limit"), HistoryArgs)
    owner = target_owner(request_user(request), args.owner, args.name)
    hist = await request.app[REVISIONS].history(
        args.name, owner=owner, limit=args.limit, cursor=args.cursor
    )
    return web.json_response(msgspec.to_builtins(hist))


async def diff(request: web.Request) -> web.Response:
    args = convert(_query(request), DiffArgs)
    owner = target_owner(request_user(request), args.owner, args.name)
    old, new, d = await request.app[REVISIONS].diff(
        args.name, owner=owner, old=args.from_, new=args.to
    )
    return web.json_response(
        {"name": args.name, "owner": owner, "from": old, "to": new, **msgspec.to_builtins(d)}
    )


async def delete(request: web.Request) -> web.Response:
    args = await read_args(request, DeleteArgs)
    user = request_user(request)
    owner = target_owner(user, args.owner, args.name)
    sha = await request.app[REVISIONS].delete(
        args.name, owner=owner, author=user.id, message=args.message
    )
    return web.json_response({"name": args.name, "owner": owner, "revision": sha,
                              "deleted": True})
