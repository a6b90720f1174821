"""Chart entries for nodes and connections that the original chart does not have; pure.

They follow Nodeworks' own layout of a saved entry (same keys, same order), with editor
defaults: a new node is placed by `layout` in columns by depth.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import Any

from broker.nodeworks.chart import EDITABLE_WIDGETS
from broker.nodeworks.library import ANY, TerminalSpec

ORIGIN = (5000.0, 5000.0)  # where Nodeworks centres a new scene
COLUMN_PX = 260.0
ROW_PX = 140.0


def terminal_entry(spec: TerminalSpec, value: Any) -> dict[str, Any]:
    """A terminal as Nodeworks saves it: value, flipped, and its 21 opts."""
    editable_output = not spec.is_input and spec.widget in EDITABLE_WIDGETS
    return {
        "value": value,
        "flipped": False,
        "opts": {
            "widget": spec.widget,
            "in": spec.is_input,
            "out": not spec.is_input,
            "showlabel": not editable_output,
            "items": list(spec.items),
            "min": -999999,
            "max": 999999,
            "dtype": spec.dtype,
            "value": spec.value,
            "flipped": False,
            "multiinput": spec.multiinput,
            "checkable": False,
            "columndelegate": {},
            "rowdelegate": {},
            "columns": [],
            "rows": [],
            "buttons": ["btn1"],
            "browsetype": "open",
            "name": spec.name,
            "selectionBehavior": "cell",
            "selectionMode": "single",
        },
    }


def generic_terminal(name: str, *, is_input: bool, multiinput: bool = False) -> TerminalSpec:
    """A terminal of a node type the library does not describe (a plugin's)."""
    return TerminalSpec(name=name, is_input=is_input, dtype=ANY, multiinput=multiinput)


def node_entry(
    uniquename: str,
    path: tuple[str, str],
    terminals: Mapping[str, dict[str, Any]],
    pos: tuple[float, float],
    layer: int,
) -> dict[str, Any]:
    return {
        "type": "Node",
        "name": path[1],
        "uniquename": uniquename,
        "pos": [float(pos[0]), float(pos[1])],
        "path": [path[0], path[1]],
        "terminals": dict(terminals),
        "tunnel": False,
        "forcerun": False,
        "hidden": False,
        "customState": None,
        "layer": layer,
    }


def connection_entry(uniquename: str, source: tuple[str, str], target: tuple[str, str]
                     ) -> dict[str, Any]:
    return {
        "type": "Connection",
        "name": uniquename,
        "line": "cubic",
        "uniquename": uniquename,
        "input": [source[0], source[1]],
        "output": [target[0], target[1]],
        "controlpoints": [],
    }


def depths(parents: Mapping[str, list[str]]) -> dict[str, int]:
    """Longest distance from a root for each node (all 0 if the graph has a cycle)."""
    graph = {n: [p for p in ps if p in parents] for n, ps in parents.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return dict.fromkeys(parents, 0)
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = 1 + max((depth[p] for p in graph.get(n, [])), default=-1)
    return depth


def layout(
    new: list[str], parents: Mapping[str, list[str]], taken: list[tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Positions for new nodes: a column per depth, below the nodes already placed."""
    x0, y0 = ORIGIN
    if taken:
        x0 = min(p[0] for p in taken)
        y0 = max(p[1] for p in taken) + 2 * ROW_PX
    depth = depths(parents)
    rows: dict[int, int] = {}
    placed: dict[str, tuple[float, float]] = {}
    for n in new:
        d = depth.get(n, 0)
        row = rows.get(d, 0)
        rows[d] = row + 1
        placed[n] = (x0 + d * COLUMN_PX, y0 + row * ROW_PX)
    return placed
