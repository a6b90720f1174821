"""Bytes → Workflow: JSON or YAML, duplicate keys and type errors reported with their path."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from broker.errors import BadRequest, InvalidWorkflow
from broker.spec import Node, Workflow


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


def _find_dup(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, _Obj):
        if value.dups:
            return path, value.dups[0]
        for k, v in value.items():
            found = _find_dup(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_dup(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _load_yaml(raw: bytes | str) -> Any:
    """yaml.safe_load, keeping duplicate keys visible (YAML would keep the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Obj:
        loader.flatten_mapping(node)
        return _pairs([(loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
                       for k, v in node.value])

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(raw, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
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
    dup = _find_dup(doc, "$")
    if dup:
        path, key = dup
        what = "node id" if path == "$.nodes" else "key"
        raise InvalidWorkflow(
            f"duplicate {what} '{key}' at `{path}`",
            {"path": path, "key": key, "errors": [{"path": path, "message": f"duplicate {what}"}]},
        )
    return doc


def _node_and_field(path: str) -> dict[str, str]:
    """`$.nodes.b.retries` → {"node": "b", "field": "retries"}."""
    out: dict[str, str] = {"path": path}
    parts = path.split(".")
    if len(parts) >= 3 and parts[1] == "nodes":
        out["node"] = parts[2].split("[")[0]
        if len(parts) >= 4:
            out["field"] = ".".join(parts[3:])
    elif len(parts) >= 2:
        out["field"] = ".".join(parts[1:])
    return out


def _error_item(e: msgspec.ValidationError, prefix: str) -> dict[str, Any]:
    text = str(e)
    message, _, path = text.rpartition(" - at ")
    if not message:
        message, path = text, "$"
    path = prefix + path.strip("`")[1:]
    return {**_node_and_field(path), "message": message}


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
        for nid, ndoc in nodes.items():
            try:
                msgspec.convert(ndoc, Node)
            except msgspec.ValidationError as e:
                items.append(_error_item(e, f"$.nodes.{nid}"))
                cause = e
    if items and cause is not None:
        _raise(items, cause)
    try:
        return msgspec.convert(doc, Workflow)
    except msgspec.ValidationError as e:
        _raise([_error_item(e, "$")], e)
        raise  # unreachable


def parse_workflow(raw: bytes | str, fmt: str = "json") -> Workflow:
    """Parse and type-check a workflow document (semantic checks are in `validate`)."""
    return to_workflow(load_document(raw, fmt))
