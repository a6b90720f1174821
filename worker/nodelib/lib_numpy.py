"""Nodeworks library `numpy`: Range, Linspace, Trig (numpy imported when one runs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Values = Mapping[str, Any]

# Nodeworks' Range `type` choices (with its "foat16" typo) → numpy dtype names.
DTYPES = {
    "int": "int64", "int0": "intp", "int8": "int8", "int16": "int16", "int32": "int32",
    "int64": "int64", "float": "float64", "foat16": "float16", "float16": "float16",
    "float32": "float32", "float64": "float64",
}
TRIG = ("sin", "sinh", "cos", "cosh", "tan", "tanh")


def _number(values: Values, terminal: str, default: float) -> float:
    value = values.get(terminal)
    return default if value is None else float(value)


def range_(values: Values) -> dict[str, Any]:
    import numpy

    kind = values.get("type") or "float"
    if kind not in DTYPES:
        raise ValueError(f"unknown Range type {kind!r} (one of {', '.join(DTYPES)})")
    start = _number(values, "start", 0)
    stop = _number(values, "stop", 10)
    step = _number(values, "step", 1)
    return {"range": numpy.arange(start, stop, step, dtype=DTYPES[kind])}


def linspace(values: Values) -> dict[str, Any]:
    import numpy

    num = int(_number(values, "num", 50))
    start, stop = _number(values, "start", 0), _number(values, "stop", 1)
    return {"array": numpy.linspace(start, stop, num)}


def trig(values: Values) -> dict[str, Any]:
    import numpy

    operation = values.get("operation") or "sin"
    if operation not in TRIG:
        raise ValueError(f"unknown Trig operation {operation!r} (one of {', '.join(TRIG)})")
    data = values.get("input")
    if data is None:
        raise ValueError("terminal 'input' has no value")
    return {"array": getattr(numpy, operation)(numpy.asarray(data, dtype=float))}


NODES: dict[tuple[str, str], Callable[[Values], dict[str, Any]]] = {
    ("numpy", "Range"): range_,
    ("numpy", "Linspace"): linspace,
    ("numpy", "Trig"): trig,
}
