"""Nodeworks library `math`: Add, Subtract, Multiply, Divide, Power, Root, Modulo.

Operands are numbers or arrays (lists, computed with numpy). A connected multiinput
terminal holds a list of values: Add and Multiply combine all of them; the other nodes take
a one-element list as its element, and a longer list as one array.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

Values = Mapping[str, Any]


def _array(value: list[Any]) -> Any:
    import numpy

    return numpy.asarray(value, dtype=float)


def operand(value: Any, terminal: str) -> Any:
    """A number, or a numpy array for a list of several values."""
    if isinstance(value, list):
        if len(value) == 1:
            return operand(value[0], terminal)
        return _array(value)
    if value is None or isinstance(value, str):
        raise ValueError(f"terminal {terminal!r} needs a number, got {value!r}")
    return value


def _all(values: Values, terminal: str) -> list[Any]:
    value = values.get(terminal)
    items = [] if value is None else value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"terminal {terminal!r} has no values")
    return [operand(v, terminal) for v in items]


def _binary(a: str, b: str, op: Callable[[Any, Any], Any]) -> Callable[[Values], dict[str, Any]]:
    def node(values: Values) -> dict[str, Any]:
        return {"result": op(operand(values.get(a), a), operand(values.get(b), b))}

    return node


def root_of(radicand: Any, degree: Any) -> Any:
    """The real `degree`-th root; an odd root of a negative number stays real."""
    if isinstance(radicand, int | float) and radicand < 0 and float(degree).is_integer() \
            and int(degree) % 2 == 1:
        return -((-radicand) ** (1.0 / degree))
    return radicand ** (1.0 / degree)


def add(values: Values) -> dict[str, Any]:
    return {"result": functools.reduce(operator.add, _all(values, "input"))}


def multiply(values: Values) -> dict[str, Any]:
    return {"result": functools.reduce(operator.mul, _all(values, "input"))}


NODES: dict[tuple[str, str], Callable[[Values], dict[str, Any]]] = {
    ("math", "Add"): add,
    ("math", "Subtract"): _binary("minuend", "subtrahend", operator.sub),
    ("math", "Multiply"): multiply,
    ("math", "Divide"): _binary("dividend", "divisor", operator.truediv),
    ("math", "Power"): _binary("base", "exponent", operator.pow),
    ("math", "Root"): _binary("radicand", "degree", root_of),
    ("math", "Modulo"): _binary("dividend", "divisor", operator.mod),
}
