"""Bytes → Workflow: JSON or YAML, duplicate keys and type errors reported with their path."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from broker.errors import BadRequest, InvalidWorkflow
from broker.spec import Workflow


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


def load_document(raw: bytes | str, fmt: str = "json") -> Any:
    """Parse JSON (or YAML) into plain Python objects; duplicate keys are an error."""
    if fmt == "yaml":
        import yaml

        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise BadRequest(f"invalid YAML: {e}", {"format": "yaml"}) from e
    try:
        doc = json.loads(raw, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise BadRequest(
            f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            {"line": e.lineno, "column": e.colno},
        ) from e
    except UnicodeDecodeError as e:
        raise BadRequest("invalid JSON: body is not UTF-8") from e
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


def to_workflow(doc: Any) -> Workflow:
    """Typed conversion; the error names the JSON path, the node and the field."""
    if not isinstance(doc, dict):
        raise InvalidWorkflow("a workflow must be a JSON object", {"path": "$"})
    try:
        return msgspec.convert(doc, Workflow)
    except msgspec.ValidationError as e:
        text = str(e)
        message, _, path = text.rpartition(" - at ")
        if not message:
            message, path = text, "$"
        path = path.strip("`")
        details = _node_and_field(path)
        where = f"node '{details['node']}'" if "node" in details else "workflow"
        if "field" in details:
            where += f", field '{details['field']}'"
        details["errors"] = [{"path": path, "message": message}]  # type: ignore[assignment]
        raise InvalidWorkflow(f"{where}: {message}", details) from e


def parse_workflow(raw: bytes | str, fmt: str = "json") -> Workflow:
    """Parse and type-check a workflow document (semantic checks are in `validate`)."""
    return to_workflow(load_document(raw, fmt))
