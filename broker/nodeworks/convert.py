"""A Nodeworks chart (`.nc`) → a native workflow document; pure.

Each chart node becomes one native node (ids from `ids.node_ids`); each connection an
`after` edge plus, for Python nodes, a wire from the source's output terminal into the
target's input terminal (see `wire` for the kwargs `worker.nodelib.run:run_node` gets).
Broker job nodes become native nodes of their executor (`jobs`). The result has been
through the native parser and validator, so it publishes as is.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import Any

import msgspec

from broker.core.parse import to_workflow
from broker.core.validate import validate
from broker.errors import InvalidWorkflow
from broker.nodeworks.chart import Chart, parse_chart
from broker.nodeworks.ids import node_ids
from broker.nodeworks.jobs import native_job
from broker.nodeworks.library import JOB_SETTINGS, NodePath, NodeType, registry
from broker.nodeworks.wire import RUN_NODE, describe, escape

CONTENT_TYPE = "application/x-nodeworks"
FORMAT = "nodeworks"


class ConvertedChart(msgspec.Struct, frozen=True, kw_only=True):
    """The native workflow made from a chart, and what is needed to go back."""

    workflow: dict[str, Any]  # a native document: `broker.core.parse.to_workflow` accepts it
    node_ids: dict[str, str]  # chart uniquename → native node id
    original: bytes  # the chart exactly as given (store it beside the native spec)


def _label(path: NodePath) -> str:
    return f"{path[0]}/{path[1]}"


def _check_paths(chart: Chart, types: Mapping[NodePath, NodeType]) -> None:
    unknown: dict[NodePath, list[str]] = {}
    for u in chart.nodes:
        path = chart.path(u)
        if path not in types:
            unknown.setdefault(path, []).append(u)
    if not unknown:
        return
    listed = ", ".join(f"[{p[0]!r}, {p[1]!r}]" for p in unknown)
    raise InvalidWorkflow(
        f"unknown Nodeworks node types: {listed} (not built in; a plugin module must define "
        "them)",
        {
            "format": FORMAT,
            "unknown": [list(p) for p in unknown],
            "errors": [
                {"chart_node": u, "node_path": list(p),
                 "message": f"chart node {u!r}: unknown node type {_label(p)}"}
                for p, names in unknown.items() for u in names
            ],
        },
    )


def _check_acyclic(chart: Chart, ids: Mapping[str, str]) -> None:
    graph = {u: [c.input[0] for c in chart.incoming(u)] for u in chart.nodes}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = list(e.args[1])  # each node before the one connected from it: "a → b"
        raise InvalidWorkflow(
            "the chart has a cycle: " + " → ".join(repr(u) for u in cycle),
            {"format": FORMAT, "cycle": cycle, "node_ids": [ids[u] for u in cycle]},
        ) from e


def _after(u: str, chart: Chart, ids: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(ids[c.input[0]] for c in chart.incoming(u)))


def _lib_node(
    u: str, nt: NodeType, chart: Chart, ids: Mapping[str, str], types: Mapping[NodePath, NodeType]
) -> dict[str, Any]:
    node = chart.nodes[u]
    wires: dict[str, list[list[str | None]]] = {}
    for c in chart.incoming(u):
        src, term = c.input
        out = None if types[chart.path(src)].is_job else term
        wires.setdefault(c.output[1], []).append([ids[src], out])
    values = {
        t: term.saved()
        for t, term in node.terminals.items()
        if (term.opts.is_input and t not in wires) or term.editable_output
    }
    kwargs: dict[str, Any] = {"path": list(nt.path), "module": nt.module, "node": u,
                              "values": values}
    if wires:
        kwargs["wires"] = wires
        multi = [t for t in wires if node.terminals[t].opts.multiinput]
        if multi:
            kwargs["multi"] = multi
    if nt.file_ext:
        kwargs["file"] = ids[u] + nt.file_ext
    native: dict[str, Any] = {"executor": "python", "callable": RUN_NODE,
                              "kwargs": escape(kwargs)}
    if nt.file_ext:
        native["outputs"] = [kwargs["file"]]
    return native


def _job_settings(u: str, nt: NodeType, chart: Chart) -> dict[str, Any]:
    """Each settings terminal's value: typed in, or from a connected `types` node."""
    node = chart.nodes[u]
    connected: dict[str, list[tuple[str, str]]] = {}
    for c in chart.incoming(u):
        connected.setdefault(c.output[1], []).append(c.input)
    settings: dict[str, Any] = {}
    for t in JOB_SETTINGS[nt.path[1]][1]:
        if len(connected.get(t, ())) > 1:
            raise ValueError(f"terminal {t!r} has {len(connected[t])} connections; "
                             "a setting takes one value")
        if t in connected:
            src, out = connected[t][0]
            if chart.path(src)[0] != "types":
                raise ValueError(
                    f"terminal {t!r} is connected to {src!r} ({_label(chart.path(src))}): "
                    "a job node's settings are typed in or come from a types node"
                )
            settings[t] = chart.nodes[src].terminals[out].saved()
        elif t in node.terminals:
            settings[t] = node.terminals[t].saved()
    return settings


def _native_node(
    u: str, chart: Chart, ids: Mapping[str, str], types: Mapping[NodePath, NodeType]
) -> dict[str, Any]:
    nt = types[chart.path(u)]
    if nt.is_job:
        native = native_job(nt.path[1], _job_settings(u, nt, chart))
    else:
        native = _lib_node(u, nt, chart, ids, types)
    after = _after(u, chart, ids)
    if after:
        native["after"] = after
    native["description"] = describe(nt.path, u)
    return native


def _validate(doc: dict[str, Any], ids: Mapping[str, str]) -> None:
    """Native checks; their errors also name the chart's node (`chart_node`)."""
    try:
        validate(to_workflow(doc))
    except InvalidWorkflow as e:
        back = {v: k for k, v in ids.items()}
        details = dict(e.details)
        details["errors"] = [
            {**item, "chart_node": back[item["node"]]} if item.get("node") in back else item
            for item in details.get("errors", [])
        ]
        node = details.get("node")
        prefix = f"chart node {back[node]!r}: " if node in back else ""
        raise InvalidWorkflow(prefix + e.message, {"format": FORMAT, **details}) from e


def convert_chart(
    raw: bytes, *, name: str, plugins: Mapping[NodePath, NodeType] | None = None
) -> ConvertedChart:
    """Convert the bytes of a `.nc` chart into a native workflow named `name`.

    `plugins` is what `library.load_plugins` returned (node types beyond the built-ins).
    Raises BadRequest when the bytes are not JSON, InvalidWorkflow when the chart is
    malformed, uses unknown node types (all listed), has a cycle (named by the chart's
    uniquenames), or a node's settings are invalid (every problem listed).
    """
    chart = parse_chart(raw)
    types = registry(plugins)
    _check_paths(chart, types)
    ids = node_ids(chart.nodes)
    _check_acyclic(chart, ids)
    nodes: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for u in chart.nodes:
        try:
            nodes[ids[u]] = _native_node(u, chart, ids, types)
        except ValueError as e:
            problems.append({"chart_node": u, "node": ids[u],
                             "message": f"chart node {u!r}: {e}"})
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidWorkflow(problems[0]["message"] + more,
                              {"format": FORMAT, "errors": problems})
    doc = {"name": name, "description": f"Nodeworks chart ({len(nodes)} nodes)", "nodes": nodes}
    _validate(doc, ids)
    return ConvertedChart(workflow=doc, node_ids=ids, original=bytes(raw))
