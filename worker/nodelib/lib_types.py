"""Nodeworks library `types`: Float, Integer, String, Boolean.

Each has one output whose entry widget holds the value; the node passes it on as its type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _typed(terminal: str, kind: type, empty: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def node(values: Mapping[str, Any]) -> dict[str, Any]:
        value = values.get(terminal)
        return {terminal: empty if value is None else kind(value)}

    return node


NODES: dict[tuple[str, str], Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    ("types", "Float"): _typed("float", float, 0.0),
    ("types", "Integer"): _typed("int", int, 0),
    ("types", "String"): _typed("string", str, ""),
    ("types", "Boolean"): _typed("bool", bool, False),
}
