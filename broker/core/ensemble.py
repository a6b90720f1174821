"""Ensembles: a node of kind `ensemble` runs its sub-workflow once per parameter set (pure).

Validation (`resolve_group`, called by `broker.core.validate.resolve`) resolves the
sub-workflow once, under the workflow's defaults overlaid by its own, and checks the
parameter sets. Expansion (`broker.core.expand`) then copies it once per member:

    ensemble `ens`, member i, sub-node `sim`          task `ens[i].sim`     tpl `ens.sim`
    …a sub-node with a matrix                         tasks `ens[i].sim[j]`

A member's parameters (its task `vars`) are the sub-workflow's `params` overridden by its
parameter set. Ensembles do not nest.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import TYPE_CHECKING, Any

import msgspec

from broker.errors import InvalidWorkflow
from broker.spec import NODE_ID_PATTERN, Node, NodeDefaults, SubWorkflow, Workflow

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.core.validate import ResolvedNode

    Resolver = Callable[[Workflow], tuple[list[ResolvedNode], list[str]]]

MAX_MEMBERS = 100_000
PARAM_NAME = re.compile(r"^[A-Za-z_]\w*$")
_NODE_ID = re.compile(NODE_ID_PATTERN)


class EnsembleGroup(msgspec.Struct, kw_only=True):
    """An ensemble resolved once; `nodes` are keyed by their sub-workflow id, each spec's
    `node` is its template id (`ens.sim`)."""

    id: str
    priority: int  # the ensemble node's own priority, added to every member task's
    members: list[dict[str, Any]]  # one params dict per member, in member order
    nodes: dict[str, ResolvedNode]
    order: list[str]  # sub-node ids, parents first
    sinks: list[str]  # sub-nodes no other sub-node depends on: what dependents wait for


def template_id(group: str, sub: str) -> str:
    return f"{group}.{sub}"


def member_id(group: str, member: int) -> str:
    return f"{group}[{member}]"


def parameter_sets(parameters: list[dict[str, Any]] | dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A list is taken as is; a matrix gives its cartesian product (first name slowest)."""
    if isinstance(parameters, list):
        return [dict(p) for p in parameters]
    names = list(parameters)
    combos = itertools.product(*(parameters[n] for n in names))
    return [dict(zip(names, combo, strict=True)) for combo in combos]


def merged_defaults(outer: NodeDefaults | None, inner: NodeDefaults | None) -> NodeDefaults:
    """The workflow's defaults, each field the sub-workflow sets replaced (`env` merged)."""
    base = outer or NodeDefaults()
    if inner is None:
        return base
    changes = {
        f: getattr(inner, f) for f in inner.__struct_fields__ if getattr(inner, f) is not None
    }
    if base.env and inner.env:
        changes["env"] = {**base.env, **inner.env}
    return msgspec.structs.replace(base, **changes)


def _check_parameters(
    parameters: list[dict[str, Any]] | dict[str, list[Any]], declared: dict[str, Any]
) -> list[tuple[str, str]]:
    """(field, message) problems of an ensemble's `parameters`."""
    problems: list[tuple[str, str]] = []
    if isinstance(parameters, dict):
        for name, values in parameters.items():
            if not PARAM_NAME.match(name):
                problems.append((f"parameters.{name}", f"'{name}' is not a parameter name"))
            if not values:
                problems.append((f"parameters.{name}", "a parameter needs at least one value"))
        size = math.prod(len(v) for v in parameters.values())
        if size > MAX_MEMBERS:
            problems.append(("parameters", f"expands to {size} members (limit {MAX_MEMBERS})"))
        return problems
    every = set().union(*parameters) if parameters else set()
    for i, pset in enumerate(parameters):
        for name in pset:
            if not PARAM_NAME.match(name):
                problems.append((f"parameters[{i}].{name}", f"'{name}' is not a parameter name"))
        missing = sorted(every - set(pset) - set(declared))
        if missing:
            problems.append((
                f"parameters[{i}]",
                f"member {i} has no value for '{missing[0]}' (other members set it; give it a "
                "default in the sub-workflow's params)",
            ))
    if len(parameters) > MAX_MEMBERS:
        problems.append(("parameters", f"{len(parameters)} members (limit {MAX_MEMBERS})"))
    return problems


def _check_sub_nodes(nid: str, sub: SubWorkflow, wf: Workflow) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for sid, node in sub.nodes.items():
        tpl = template_id(nid, sid)
        field = f"workflow.nodes.{sid}"
        if node.kind == "ensemble":
            problems.append((f"{field}.kind", "ensembles do not nest"))
        if tpl in wf.nodes:
            problems.append((field, f"'{tpl}' is also a node of the workflow; rename one"))
        elif not _NODE_ID.match(tpl):
            problems.append((field, f"template id '{tpl}' is longer than 128 characters"))
    return problems


def _nested_item(nid: str, item: dict[str, Any]) -> dict[str, Any]:
    """A sub-workflow's error item, re-addressed under the ensemble node."""
    inner = item.get("field", "")
    field = f"workflow.nodes.{item['node']}.{inner}" if "node" in item else f"workflow.{inner}"
    rest = {k: v for k, v in item.items() if k not in ("node", "field", "path")}
    return {**rest, "node": nid, "field": field, "path": f"$.nodes.{nid}.{field}"}


def _item(nid: str, field: str, message: str) -> dict[str, Any]:
    return {"node": nid, "field": field, "path": f"$.nodes.{nid}.{field}", "message": message}


def _sub_workflow(wf: Workflow, sub: SubWorkflow, names: set[str]) -> Workflow:
    """The sub-workflow as a workflow of its own: placeholders may name the run's params,
    the sub-workflow's params and any member parameter."""
    params = {**wf.params, **sub.params, **dict.fromkeys(names - set(sub.params))}
    return Workflow(
        name=wf.name, nodes=sub.nodes, params=params,
        defaults=merged_defaults(wf.defaults, sub.defaults),
    )


def resolve_group(
    nid: str, node: Node, wf: Workflow, resolve: Resolver
) -> tuple[EnsembleGroup | None, list[dict[str, Any]]]:
    """→ (the resolved ensemble or None, error items naming `nid`). `resolve` is
    `broker.core.validate.resolve`, passed in so that this module does not import it."""
    sub, parameters = node.workflow, node.parameters
    if sub is None or not parameters:
        return None, []  # reported by validate's own ensemble checks
    problems = _check_parameters(parameters, sub.params) + _check_sub_nodes(nid, sub, wf)
    if problems:
        return None, [_item(nid, f, m) for f, m in problems]
    members = [{**sub.params, **p} for p in parameter_sets(parameters)]
    names = set().union(*members)
    try:
        nodes, order = resolve(_sub_workflow(wf, sub, names))
    except InvalidWorkflow as e:
        return None, [_nested_item(nid, item) for item in e.details.get("errors", [])]
    by_id = {
        n.id: msgspec.structs.replace(
            n, spec=msgspec.structs.replace(n.spec, node=template_id(nid, n.id))
        )
        for n in nodes
    }
    depended = {dep for n in nodes for dep in n.after}
    group = EnsembleGroup(
        id=nid,
        priority=node.priority or 0,
        members=members,
        nodes=by_id,
        order=order,
        sinks=[s for s in order if s not in depended],
    )
    return group, []
