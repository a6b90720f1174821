"""Turn node outputs (numpy arrays and scalars, tuples) into plain JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """Arrays → lists, numpy scalars → Python numbers, tuples → lists, recursively."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    raise TypeError(f"a node output of type {type(value).__name__} is not a JSON value")
