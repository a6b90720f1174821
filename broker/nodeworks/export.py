"""A native workflow document → a Nodeworks chart (`.nc`); pure.

Nodes made by `convert_chart` (python nodes calling `run_node`) go back to their node type,
with their saved values and wires; any other native node becomes a broker job node of its
executor (`jobs`). With the original chart, a node that keeps its uniquename and type keeps
its entry (pos, geometry, terminal opts, stale output values, …) with only changed values
updated, connections keep their names and drawing state, and entries of other types are
kept, all in the original order: exporting an unchanged conversion gives the original bytes.
New nodes and connections get Nodeworks' defaults (see `entries`) and are appended.

Not representable, so dropped: a dependency of a Python node that is not a wire, and a
dependency on a node without output terminals (a Plot).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.errors import InvalidWorkflow
from broker.nodeworks.chart import Chart, parse_chart
from broker.nodeworks.entries import (
    connection_entry,
    generic_terminal,
    layout,
    node_entry,
    terminal_entry,
)
from broker.nodeworks.ids import node_ids
from broker.nodeworks.jobs import job_settings
from broker.nodeworks.library import BUILTIN, JOB_RESULT, NodePath, TerminalSpec
from broker.nodeworks.wire import RUN_NODE, described_name, unescape

ConnKey = tuple[str, str, str, str]  # source node, output terminal, target node, input terminal


@dataclass
class _Node:
    """One native node seen as a chart node."""

    id: str
    path: NodePath
    is_job: bool
    values: dict[str, Any]
    wires: list[tuple[str, str, str | None]]  # (input terminal, source id, output terminal)
    multi: set[str]
    after: list[str]
    name: str | None = None  # the chart uniquename it came from, when known
    uniquename: str = ""
    retained: bool = False


@dataclass
class _Export:
    nodes: list[_Node]
    orig: Chart | None
    by_id: dict[str, _Node] = field(default_factory=dict)
    wired_from: dict[str, list[str]] = field(default_factory=dict)  # id → output terminals

    def __post_init__(self) -> None:
        self.by_id = {n.id: n for n in self.nodes}
        for n in self.nodes:
            for _, src, out in n.wires:
                if out and out not in self.wired_from.setdefault(src, []):
                    self.wired_from[src].append(out)


def _job_values(path: NodePath, settings: dict[str, Any]) -> dict[str, Any]:
    """Every settings terminal of a job node: its value, or the terminal's default."""
    specs = [t for t in BUILTIN[path].terminals if t.is_input and t.name != "input"]
    return {t.name: settings.get(t.name, t.value) for t in specs}


def _is_path(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)


def _strings(value: Any) -> set[str]:
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _wires(value: Any) -> list[tuple[str, str, str | None]]:
    """(input terminal, source id, output terminal) of well-formed wires, in order."""
    if not isinstance(value, dict):
        return []
    return [
        (str(t), str(src[0]), src[1] if isinstance(src[1], str) else None)
        for t, sources in value.items() if isinstance(sources, list)
        for src in sources if isinstance(src, list) and len(src) == 2
    ]


def _view_node(nid: str, node: Any, defaults: dict[str, Any]) -> _Node:
    if not isinstance(node, dict):
        raise InvalidWorkflow(f"node {nid!r} is not an object", {"node": nid})
    after = [str(a) for a in node.get("after") or []]
    k = unescape(node.get("kwargs"))
    k = k if isinstance(k, dict) else {}
    if node.get("callable") == RUN_NODE and _is_path(k.get("path")):
        lib, name = k["path"]
        values = k.get("values")
        return _Node(id=nid, path=(lib, name), is_job=False,
                     values=dict(values) if isinstance(values, dict) else {},
                     wires=_wires(k.get("wires")), multi=_strings(k.get("multi")), after=after,
                     name=k.get("node") if isinstance(k.get("node"), str) else None)
    path, settings = job_settings(node, defaults)
    return _Node(id=nid, path=path, is_job=True, values=_job_values(path, settings), wires=[],
                 multi=set(), after=after, name=described_name(node.get("description")))


def _assign_uniquenames(ex: _Export) -> None:
    orig = ex.orig
    inverse = {i: u for u, i in node_ids(orig.nodes).items()} if orig else {}
    reserved = set(orig.entries) - set(orig.nodes) if orig else set()
    used: set[str] = set()
    for n in ex.nodes:
        want = n.name or inverse.get(n.id, n.id)
        u, k = want, 0
        while u in used or u in reserved:
            u, k = f"{want}.{k}", k + 1
        n.uniquename = u
        used.add(u)
        n.retained = bool(orig and u in orig.nodes and orig.path(u) == n.path)


def _outputs(ex: _Export, n: _Node) -> list[str]:
    """The output terminal names of the chart node `n` will be."""
    if n.retained and ex.orig:
        terms = ex.orig.nodes[n.uniquename].terminals
        return [t for t, term in terms.items() if term.opts.is_output]
    nt = BUILTIN.get(n.path)
    if nt:
        return [t.name for t in nt.terminals if not t.is_input]
    return ex.wired_from.get(n.id, [])


def _job_connections(ex: _Export, n: _Node) -> list[ConnKey]:
    """Original connections into a job node that still match a dependency, then one
    connection into `input` for each other dependency."""
    deps = {ex.by_id[d].uniquename: d for d in n.after if d in ex.by_id}
    keys: list[ConnKey] = []
    if n.retained and ex.orig:
        keys = [c.key for c in ex.orig.incoming(n.uniquename) if c.input[0] in deps]
    covered = {k[0] for k in keys}
    for u, d in deps.items():
        outs = _outputs(ex, ex.by_id[d])
        if u not in covered and outs:
            keys.append((u, outs[0], n.uniquename, "input"))
    return keys


def _desired(ex: _Export) -> list[ConnKey]:
    keys: list[ConnKey] = []
    for n in ex.nodes:
        if n.is_job:
            keys += _job_connections(ex, n)
            continue
        for terminal, src, out in n.wires:
            if src in ex.by_id:
                keys.append((ex.by_id[src].uniquename, out or JOB_RESULT.name, n.uniquename,
                             terminal))
    return list(dict.fromkeys(keys))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _spec(n: _Node, terminal: str) -> TerminalSpec:
    nt = BUILTIN.get(n.path)
    for spec in nt.terminals if nt else ():
        if spec.name == terminal:
            return spec
    return generic_terminal(terminal, is_input=True, multiinput=terminal in n.multi)


def _retained_entry(ex: _Export, n: _Node, connected: set[tuple[str, str]]) -> dict[str, Any]:
    assert ex.orig is not None
    u = n.uniquename
    entry: dict[str, Any] = copy.deepcopy(ex.orig.entries[u])
    terms = entry.setdefault("terminals", {})
    parsed = ex.orig.nodes[u].terminals
    for t, value in n.values.items():
        if (u, t) in connected:
            continue
        if t not in parsed:
            terms[t] = terminal_entry(_spec(n, t), value)
        elif not _equal(parsed[t].saved(), value):
            terms[t]["value"] = value
    return entry


def _new_terminals(ex: _Export, n: _Node) -> list[TerminalSpec]:
    nt = BUILTIN.get(n.path)
    if nt:
        specs = list(nt.terminals)
    else:  # a plugin's node: its terminals as the document uses them
        names = list(dict.fromkeys([*n.values, *(w[0] for w in n.wires)]))
        specs = [_spec(n, t) for t in names]
        specs += [generic_terminal(t, is_input=False) for t in _outputs(ex, n)]
    known = {s.name for s in specs}
    return specs + [_spec(n, t) for t in n.values if t not in known]


def _new_entry(ex: _Export, n: _Node, pos: tuple[float, float], layer: int) -> dict[str, Any]:
    terms = {
        s.name: terminal_entry(s, n.values.get(s.name) if s.name in n.values else None)
        for s in _new_terminals(ex, n)
    }
    return node_entry(n.uniquename, n.path, terms, pos, layer)


def _node_entries(ex: _Export, desired: list[ConnKey]) -> dict[str, dict[str, Any]]:
    connected = {(k[2], k[3]) for k in desired}
    entries = {n.uniquename: _retained_entry(ex, n, connected) for n in ex.nodes if n.retained}
    new = [n for n in ex.nodes if not n.retained]
    if not new:
        return entries
    taken = [(float(e["pos"][0]), float(e["pos"][1]))
             for e in entries.values() if len(e.get("pos") or []) == 2]
    parents = {n.uniquename: [ex.by_id[d].uniquename for d in n.after if d in ex.by_id]
               for n in ex.nodes}
    places = layout([n.uniquename for n in new], parents, taken)
    layers = [e.get("layer") for e in entries.values()]
    layer = max([v for v in layers if isinstance(v, int)], default=0)
    for i, n in enumerate(new, start=1):
        entries[n.uniquename] = _new_entry(ex, n, places[n.uniquename], layer + i)
    return entries


def _in_place_groups(orig: Chart | None, desired: list[ConnKey]) -> set[tuple[str, str]]:
    """Target terminals whose kept connections can stay where they are in the file: the
    kept ones in file order, then the new ones, is the wanted (multiinput) order."""
    groups: dict[tuple[str, str], list[ConnKey]] = {}
    for k in desired:
        groups.setdefault((k[2], k[3]), []).append(k)
    old = [c.key for c in orig.connections.values()] if orig else []
    ok: set[tuple[str, str]] = set()
    for target, keys in groups.items():
        wanted = set(keys)
        kept = list(dict.fromkeys(k for k in old if k in wanted))
        if kept + [k for k in keys if k not in kept] == keys:
            ok.add(target)
    return ok


def _free_name(taken: set[str]) -> str:
    name, k = "connection", 0
    while name in taken:
        name, k = f"connection.{k}", k + 1
    taken.add(name)
    return name


def _assemble(ex: _Export, nodes: dict[str, dict[str, Any]], desired: list[ConnKey]
              ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    wanted = set(desired)
    in_place = _in_place_groups(ex.orig, desired)
    emitted: set[ConnKey] = set()
    old_entry: dict[ConnKey, tuple[str, Any]] = {}
    for key, entry in (ex.orig.entries.items() if ex.orig else ()):
        c = ex.orig.connections.get(key) if ex.orig else None
        if key in nodes and ex.orig and key in ex.orig.nodes:
            out[key] = nodes[key]
        elif c is not None:
            old_entry.setdefault(c.key, (key, entry))
            if c.key in wanted and c.key not in emitted and (c.output[0], c.output[1]) in in_place:
                out[key] = copy.deepcopy(entry)
                emitted.add(c.key)
        elif ex.orig and key not in ex.orig.nodes:
            out[key] = copy.deepcopy(entry)  # an entry of another type: kept as is
    out.update({u: e for u, e in nodes.items() if u not in out})
    taken = set(out) | set(nodes) | {name for name, _ in old_entry.values()}
    for k in desired:
        if k in emitted:
            continue
        if k in old_entry and old_entry[k][0] not in out:
            name, entry = old_entry[k]
            out[name] = copy.deepcopy(entry)
        else:
            name = _free_name(taken)
            out[name] = connection_entry(name, (k[0], k[1]), (k[2], k[3]))
        emitted.add(k)
    return out


def export_chart(workflow_doc: Mapping[str, Any], original: bytes | None = None) -> bytes:
    """The chart (`.nc` bytes, JSON indented like Nodeworks saves it) for a native workflow.

    `workflow_doc` is a native document as stored (e.g. one `convert_chart` made, possibly
    edited since); `original` is the chart it was converted from, whose editor state is kept.
    Raises InvalidWorkflow when the document has no nodes object.
    """
    nodes = workflow_doc.get("nodes")
    if not isinstance(nodes, Mapping):
        raise InvalidWorkflow("a workflow needs a nodes object to export", {"field": "nodes"})
    defaults = workflow_doc.get("defaults") or {}
    ex = _Export(
        nodes=[_view_node(str(nid), node, defaults) for nid, node in nodes.items()],
        orig=parse_chart(original) if original is not None else None,
    )
    _assign_uniquenames(ex)
    desired = _desired(ex)
    chart = _assemble(ex, _node_entries(ex, desired), desired)
    return json.dumps(chart, indent=2).encode()
