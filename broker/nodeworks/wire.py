"""The contract between a converted chart and `worker.nodelib.run:run_node`.

A chart node that runs Python becomes a native `python` node calling `RUN_NODE` with these
kwargs (every string in them passed through `escape`):

    path    [library, node name]           the node type
    module  "pkg.module"                   the module whose NODES mapping implements it
    node    "my string node"               the chart's uniquename (for messages)
    values  {terminal: value}              saved values of unconnected inputs (and of
                                           editable outputs, e.g. a Float node's number)
    wires   {terminal: [[task, out], ...]} connected inputs, in connection order; `out`
                                           is the source's output terminal, or null for
                                           a broker job node (its whole result)
    multi   [terminal, ...]                connected multiinput terminals: they get a list
    file    "node.png"                     only for nodes that write a file

A converted node's description names its chart node (`describe`), so that a chart exported
without the original keeps the uniquenames of job nodes too (`described_name`).

Standard library only: the worker imports it in every node's process.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

RUN_NODE = "worker.nodelib.run:run_node"

# A string that would look like a `{{ placeholder }}` to the broker's templating is stored
# as {ESCAPED: base64(utf-8)}: chart values are data, never templates.
ESCAPED = "__nodeworks_b64__"
_PLACEHOLDER_LIKE = re.compile(r"\{\{.*?\}\}", re.S)


def escape(value: Any) -> Any:
    """Wrap every string that contains `{{ … }}` (recursively) so it is never rendered."""
    if isinstance(value, str):
        if _PLACEHOLDER_LIKE.search(value):
            return {ESCAPED: base64.b64encode(value.encode()).decode()}
        return value
    if isinstance(value, list | tuple):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def unescape(value: Any) -> Any:
    """The inverse of `escape`."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(ESCAPED), str):
            return base64.b64decode(value[ESCAPED]).decode()
        return {k: unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape(v) for v in value]
    return value


_DESCRIBED = re.compile(r'^Nodeworks .+ node ("(?:[^"\\]|\\.)*")$', re.S)


def describe(path: tuple[str, str], uniquename: str) -> str:
    """The description of a converted node: `Nodeworks math/Power node "power"`."""
    return f"Nodeworks {path[0]}/{path[1]} node {json.dumps(uniquename, ensure_ascii=False)}"


def described_name(description: object) -> str | None:
    """The uniquename in a description `describe` wrote, else None."""
    m = _DESCRIBED.match(description) if isinstance(description, str) else None
    if not m:
        return None
    try:
        name = json.loads(m.group(1))
    except ValueError:
        return None
    return name if isinstance(name, str) and name else None
