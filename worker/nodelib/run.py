"""`worker.nodelib.run:run_node`: run one Nodeworks node inside the python executor.

The python executor calls it with the kwargs `broker.nodeworks.convert` wrote (described in
`broker.nodeworks.wire`) and `inputs={parent task id: parent's result}`. It gathers the
node's values (saved values, then wired outputs of its parents), calls the implementation
from `module.NODES[path]`, and returns its outputs as JSON values: the task's result.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from broker.nodeworks.wire import unescape
from worker.nodelib.jsonable import jsonable


def implementation(module_name: str, path: tuple[str, str]) -> Callable[..., Any]:
    """The callable for `path` in a module's NODES; LookupError if it has none."""
    nodes = getattr(importlib.import_module(module_name), "NODES", None)
    impl = nodes.get(path) if isinstance(nodes, Mapping) else None
    if impl is None:
        raise LookupError(f"module {module_name!r} defines no Nodeworks node {list(path)}")
    return impl  # type: ignore[no-any-return]


def _wired(
    node: str, terminal: str, task: str, out: str | None, inputs: Mapping[str, Any]
) -> Any:
    """One wired value: the parent's output terminal, or its whole result (`out` null)."""
    if task not in inputs:
        raise LookupError(f"node {node!r}: input {terminal!r} needs task {task!r}, "
                          "which is not among the task's parents")
    result = inputs[task]
    if out is None:
        return result
    if not isinstance(result, Mapping) or out not in result:
        raise LookupError(f"node {node!r}: input {terminal!r} needs output {out!r} of "
                          f"task {task!r}, which did not produce it")
    return result[out]


def gather(
    node: str,
    values: Mapping[str, Any],
    wires: Mapping[str, list[list[str | None]]],
    multi: list[str],
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """Saved values overlaid with wired ones; a multiinput terminal gets a list."""
    gathered = dict(values)
    for terminal, sources in wires.items():
        got = [_wired(node, terminal, str(task), out, inputs) for task, out in sources]
        gathered[terminal] = got if terminal in multi else got[0]
    return gathered


def run_node(
    *,
    path: list[str],
    module: str,
    inputs: dict[str, Any],
    node: str = "",
    values: dict[str, Any] | None = None,
    wires: dict[str, list[list[str | None]]] | None = None,
    multi: list[str] | None = None,
    file: str | None = None,
) -> dict[str, Any]:
    """Run the node `path` (from `module`); returns {output terminal: JSON value}."""
    lib, name = unescape(path)
    node = unescape(node) or name
    impl = implementation(module, (lib, name))
    gathered = gather(node, unescape(values or {}), wires or {}, multi or [], inputs)
    result = impl(gathered) if file is None else impl(gathered, file=unescape(file))
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise TypeError(f"node {node!r} ({lib}/{name}) returned {type(result).__name__}, "
                        "expected a dict of output values")
    return {str(k): jsonable(v) for k, v in result.items()}
