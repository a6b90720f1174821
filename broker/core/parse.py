"""Bytes → Workflow: JSON or YAML, duplicate keys and type errors reported with their path."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from broker.errors import BadRequest, InvalidWorkflow
from broker.spec import NODE_ID_PATTERN, Node, Workflow


class _Obj(dict[str, Any]):
    """A JSON object that remembers keys it saw more than once."""

    dups: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj()
    obj.dups = []
    for k, v in pairs:
        if k in obj:
            obj.dups.append(k)
        obj[k] = v
    return obj


def _find_dup(value: Any, path: list[str | int]) -> tuple[list[str | int], str] | None:
    """First duplicated key found depth-first: (path segments of its object, key)."""
    if isinstance(value, _Obj):
        if value.dups:
            return path, value.dups[0]
        for k, v in value.items():
            found = _find_dup(v, [*path, k])
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_dup(v, [*path, i])
            if found:
                return found
    return None


def _path_text(segments: list[str | int]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments)


def _dup_error(segments: list[str | int], key: str) -> InvalidWorkflow:
    path = _path_text(segments)
    details: dict[str, Any] = {"path": path, "key": key}
    if segments == ["nodes"]:
        what = "node id"
        details["node"] = key
    else:
        what = "key"
        if len(segments) >= 2 and segments[0] == "nodes":
            details["node"] = segments[1]
            details["field"] = _path_text([*segments[2:], key])[2:]
        else:
            details["field"] = _path_text([*segments, key])[2:]
    details["errors"] = [{**{k: v for k, v in details.items()}, "message": f"duplicate {what}"}]
    return InvalidWorkflow(f"duplicate {what} '{key}' at `{path}`", details)


def _load_yaml(raw: bytes | str) -> Any:
    """yaml.safe_load, keeping duplicate keys visible (YAML would keep the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Obj:
        loader.flatten_mapping(node)
        return _pairs(
            [
                (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
                for k, v in node.value
            ]
        )

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(raw, Loader=Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        raise BadRequest(f"invalid YAML: {e}", {"format": "yaml", **where}) from e


def load_document(raw: bytes | str, fmt: str = "json") -> Any:
    """Parse JSON (or YAML) into plain Python objects; duplicate keys are an error."""
    try:
        doc = _load_yaml(raw) if fmt == "yaml" else json.loads(raw, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise BadRequest(
            f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            {"line": e.lineno, "column": e.colno},
        ) from e
    except UnicodeDecodeError as e:
        raise BadRequest(f"invalid {fmt.upper()}: body is not UTF-8") from e
    dup = _find_dup(doc, [])
    if dup:
        raise _dup_error(*dup)
    return doc


_FIELD_IN_MESSAGE = re.compile(r"Object (?:contains unknown|missing required) field `([^`]+)`")
_KEY_AT = re.compile(r"^`key` in `(.*)`$")


def _error_item(e: msgspec.ValidationError, node: str | None) -> dict[str, Any]:
    """A msgspec error as {path, node?, field?, message}; `node` when checking one node."""
    text = str(e)
    message, _, where = text.rpartition(" - at ")
    if not message:
        message, where = text, "`$`"
    key = _KEY_AT.match(where)
    if key:
        where, message = key.group(1), f"invalid key: {message}"
    rel = where.strip("`")[1:]  # msgspec paths start with "$"
    named = _FIELD_IN_MESSAGE.search(message)
    if named:
        rel += "." + named.group(1)
    item: dict[str, Any] = {"path": (f"$.nodes.{node}" if node is not None else "$") + rel}
    if node is not None:
        item["node"] = node
    field = rel.lstrip(".")
    if field:
        item["field"] = field
    item["message"] = message
    return item


def _check_node_ids(nodes: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "path": "$.nodes",
            "node": nid,
            "field": "nodes",
            "message": f"invalid node id {nid!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'",
        }
        for nid in nodes
        if not isinstance(nid, str) or not re.match(NODE_ID_PATTERN, nid)
    ]


def _raise(items: list[dict[str, Any]], cause: Exception) -> None:
    first = items[0]
    where = f"node '{first['node']}'" if "node" in first else "workflow"
    if "field" in first:
        where += f", field '{first['field']}'"
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    details: dict[str, Any] = {k: v for k, v in first.items() if k != "message"}
    details["errors"] = items
    raise InvalidWorkflow(f"{where}: {first['message']}{more}", details) from cause


def to_workflow(doc: Any) -> Workflow:
    """Typed conversion; errors name the JSON path, the node and the field.

    Nodes are checked one by one first, so that every bad node is reported with its id
    (msgspec alone reports a map value's path as `nodes[...]`).
    """
    if not isinstance(doc, dict):
        raise InvalidWorkflow("a workflow must be a JSON object", {"path": "$"})
    items: list[dict[str, Any]] = []
    cause: Exception | None = None
    nodes = doc.get("nodes")
    if isinstance(nodes, dict):
        items += _check_node_ids(nodes)
        for nid, ndoc in nodes.items():
            try:
                msgspec.convert(ndoc, Node)
            except msgspec.ValidationError as e:
                items.append(_error_item(e, nid))
                cause = e
    if items and cause is None:
        cause = ValueError(items[0]["message"])
    if items and cause is not None:
        _raise(items, cause)
    try:
        return msgspec.convert(doc, Workflow)
    except msgspec.ValidationError as e:
        _raise([_error_item(e, None)], e)
        raise  # unreachable


def parse_workflow(raw: bytes | str, fmt: str = "json") -> Workflow:
    """Parse and type-check a workflow document (semantic checks are in `validate`)."""
    return to_workflow(load_document(raw, fmt))
