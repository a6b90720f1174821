"""Parse a Nodeworks chart (`.nc`) into typed nodes and connections; pure.

Only what running a chart needs is typed (a node's path and terminals, a connection's ends);
editor state (pos, geometry, opts, …) stays in the raw entries, which `export` keeps.
Entries of other types than Node and Connection are ignored here and kept by `export`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from broker.core.parse import load_document
from broker.errors import InvalidWorkflow
from broker.nodeworks.library import NodePath

EDITABLE_WIDGETS = frozenset({"lineedit", "spinbox", "doublespinbox", "combobox", "checkbox"})


class TerminalOpts(msgspec.Struct, kw_only=True):
    is_input: bool = msgspec.field(default=False, name="in")
    is_output: bool = msgspec.field(default=False, name="out")
    multiinput: bool = False
    widget: str | None = None
    value: Any = None


class Terminal(msgspec.Struct, kw_only=True):
    value: Any = None
    opts: TerminalOpts = msgspec.field(default_factory=TerminalOpts)

    def saved(self) -> Any:
        """The user's value; an input never set falls back to its default (`opts.value`)."""
        return self.opts.value if self.value is None else self.value

    @property
    def editable_output(self) -> bool:
        """An output with an entry widget holds a parameter (a Float node's number)."""
        return self.opts.is_output and self.opts.widget in EDITABLE_WIDGETS


class ChartNode(msgspec.Struct, kw_only=True):
    path: tuple[str, str]
    name: str = ""
    terminals: dict[str, Terminal] = {}


class Connection(msgspec.Struct, kw_only=True):
    """`input` is the upstream end [node, output terminal]; `output` the downstream end."""

    input: tuple[str, str]
    output: tuple[str, str]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (*self.input, *self.output)


class Chart(msgspec.Struct, kw_only=True):
    """A parsed chart: nodes and connections by uniquename, in file order, plus raw entries."""

    nodes: dict[str, ChartNode]
    connections: dict[str, Connection]
    entries: dict[str, Any]
    inbound: dict[str, list[Connection]] = {}  # target uniquename → its connections, in order

    def path(self, uniquename: str) -> NodePath:
        lib, name = self.nodes[uniquename].path
        return (lib, name)

    def incoming(self, uniquename: str) -> list[Connection]:
        """The connections ending on a node, in file order."""
        return self.inbound.get(uniquename, [])


def _error(problems: list[dict[str, Any]]) -> InvalidWorkflow:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    first = problems[0]
    return InvalidWorkflow(
        f"invalid Nodeworks chart: {first['message']}{more}",
        {"format": "nodeworks", **{k: v for k, v in first.items() if k != "message"},
         "errors": problems},
    )


def _entry(key: str, entry: Any, chart: Chart, problems: list[dict[str, Any]]) -> None:
    kind = entry.get("type") if isinstance(entry, dict) else None
    target: type[ChartNode] | type[Connection]
    if kind == "Node":
        target = ChartNode
    elif kind == "Connection":
        target = Connection
    else:
        if not isinstance(entry, dict):
            problems.append({"entry": key, "message": f"entry {key!r} is not an object"})
        return
    try:
        item = msgspec.convert(entry, target)
    except msgspec.ValidationError as e:
        problems.append({"entry": key, "message": f"{kind.lower()} {key!r}: {e}"})
        return
    if isinstance(item, ChartNode):
        chart.nodes[key] = item
    else:
        chart.connections[key] = item


def _check_connection(key: str, c: Connection, chart: Chart) -> str | None:
    for (node, term), side, flag in ((c.input, "source", "is_output"),
                                     (c.output, "target", "is_input")):
        if node not in chart.nodes:
            return f"connection {key!r}: unknown {side} node {node!r}"
        t = chart.nodes[node].terminals.get(term)
        if t is None:
            return f"connection {key!r}: node {node!r} has no terminal {term!r}"
        if not getattr(t.opts, flag):
            role = "an output" if side == "source" else "an input"
            return f"connection {key!r}: terminal {term!r} of node {node!r} is not {role}"
    return None


def _check_fan_in(chart: Chart, problems: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for key, c in chart.connections.items():
        node, term = c.output
        t = chart.nodes[node].terminals[term]
        if c.output in seen and not t.opts.multiinput:
            problems.append({
                "entry": key, "node": node, "terminal": term,
                "message": f"terminal {term!r} of node {node!r} is not multiinput but "
                f"connections {seen[c.output]!r} and {key!r} both end on it",
            })
        seen.setdefault(c.output, key)


def parse_chart(raw: bytes | str) -> Chart:
    """Parse and check a chart: JSON, entry types, connection ends. Raises InvalidWorkflow
    (BadRequest for bytes that are not JSON) listing every problem found."""
    doc = load_document(raw, "json")
    if not isinstance(doc, dict):
        raise _error([{"message": "a chart must be a JSON object of named entries"}])
    chart = Chart(nodes={}, connections={}, entries=doc, inbound={})
    problems: list[dict[str, Any]] = []
    for key, entry in doc.items():
        _entry(key, entry, chart, problems)
    if problems:
        raise _error(problems)
    for key, c in chart.connections.items():
        message = _check_connection(key, c, chart)
        if message:
            problems.append({"entry": key, "message": message})
    if problems:
        raise _error(problems)
    _check_fan_in(chart, problems)
    if problems:
        raise _error(problems)
    if not chart.nodes:
        raise _error([{"message": "the chart has no nodes"}])
    for c in chart.connections.values():
        chart.inbound.setdefault(c.output[0], []).append(c)
    return chart
