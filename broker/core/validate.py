"""Semantic checks of a typed Workflow, and defaults applied to each node.

Every problem found is reported at once, each naming its node and field; a cycle is
reported as the list of its nodes.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import math
from typing import Any

import msgspec

from broker.core import template
from broker.core.classes import resource_class
from broker.core.ensemble import EnsembleGroup, resolve_group
from broker.core.units import duration_s, memory_mb
from broker.errors import InvalidWorkflow
from broker.spec import Node, NodeDefaults, Resources, TaskSpec, Workflow

MAX_MATRIX_SIZE = 100_000


class ResolvedNode(msgspec.Struct, kw_only=True):
    """A node with defaults applied, ready for expansion."""

    id: str
    spec: TaskSpec
    rclass: str
    priority: int
    max_attempts: int
    backoff_s: float
    trigger: str
    after: list[str]
    matrix: dict[str, list[Any]] | None
    batch_key: str
    ensemble: EnsembleGroup | None = None  # kind "ensemble": its resolved sub-workflow


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, node: str | None, field: str, message: str, **extra: Any) -> None:
        item: dict[str, Any] = {"field": field, "message": message, **extra}
        if node is not None:
            item["node"] = node
            item["path"] = f"$.nodes.{node}.{field}"
        else:
            item["path"] = f"$.{field}"
        self.items.append(item)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        where = (
            f"node '{first['node']}', field '{first['field']}'"
            if "node" in first
            else (f"field '{first['field']}'")
        )
        more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
        details: dict[str, Any] = {k: v for k, v in first.items() if k != "message"}
        details["errors"] = self.items
        raise InvalidWorkflow(f"{where}: {first['message']}{more}", details)


def _pick(node_value: Any, default_value: Any, fallback: Any) -> Any:
    if node_value is not None:
        return node_value
    if default_value is not None:
        return default_value
    return fallback


def _batch_key(spec: TaskSpec, rclass: str) -> str:
    """Tasks with the same executor, class, resources and environment may share a batch."""
    basis = json.dumps(
        [spec.executor, rclass, spec.cores, spec.memory_mb, spec.gpus, spec.env, spec.workdir,
         spec.image, spec.host],
        sort_keys=True,
    )
    return f"{spec.executor}:{rclass}:{hashlib.sha1(basis.encode()).hexdigest()[:10]}"


def _check_executor(nid: str, node: Node, executor: str, errs: _Errors) -> None:
    if node.kind == "ensemble":
        _check_ensemble(nid, node, errs)
        return
    if node.workflow is not None or node.parameters is not None:
        errs.add(nid, "kind", "workflow/parameters belong to a node of kind 'ensemble'")
    if executor in ("shell", "slurm", "ssh") and not node.command:
        errs.add(nid, "command", f"a {executor} node needs a command")
    if executor == "ssh" and not node.host:
        errs.add(nid, "host", "an ssh node needs a host (a name from the runner's inventory)")
    if executor == "aws_batch" and not node.image:
        errs.add(nid, "image", "an aws_batch node needs a container image")
    if executor == "event" and not node.wait_for:
        errs.add(nid, "wait_for", "an event node needs wait_for (the event key it waits for)")
    if executor != "event" and node.wait_for:
        errs.add(nid, "wait_for", "wait_for is for nodes with executor 'event'")
    _check_python_and_noop(nid, node, executor, errs)
    _check_conditions(nid, node, errs)


def _check_conditions(nid: str, node: Node, errs: _Errors) -> None:
    for field in ("pre", "post"):
        for i, cond in enumerate(getattr(node, field)):
            given = [f for f in ("file", "artifact", "command", "result") if getattr(cond, f)]
            if len(given) != 1:
                errs.add(nid, f"{field}[{i}]",
                         "a condition needs exactly one of file, artifact, command, result")


def _check_python_and_noop(nid: str, node: Node, executor: str, errs: _Errors) -> None:
    if executor == "python":
        given = [f for f in ("script", "callable", "command") if getattr(node, f)]
        if len(given) != 1:
            errs.add(nid, "script", "a python node needs exactly one of script, callable, command")
    if executor == "noop" and (node.command or node.script or node.callable):
        errs.add(nid, "command", "a noop node runs nothing; remove command/script/callable")
    if executor != "python" and node.kwargs:
        errs.add(nid, "kwargs", "kwargs are for python callables only")


def _check_ensemble(nid: str, node: Node, errs: _Errors) -> None:
    if node.workflow is None:
        errs.add(nid, "workflow", "an ensemble node needs a workflow (its sub-workflow)")
    if not node.parameters:
        errs.add(nid, "parameters", "an ensemble node needs parameters (a list, or a matrix)")
    if node.command or node.script or node.callable or node.matrix:
        errs.add(nid, "kind", "an ensemble node runs its workflow; remove command/script/matrix")
    unused = [f for f in _TASK_ONLY if getattr(node, f)]
    if node.trigger != "all_success":
        unused.append("trigger")
    if unused:
        errs.add(nid, unused[0], f"'{unused[0]}' does not apply to an ensemble node; set it on "
                 "the sub-workflow's nodes (or its defaults)")


# Node fields that mean nothing on an ensemble node itself.
_TASK_ONLY = ("executor", "resources", "retries", "retry_backoff", "timeout", "env", "workdir",
              "kwargs", "pre", "post", "inputs", "outputs", "host", "image", "init", "wait_for")


def _placeholder_texts(node: Node, env: dict[str, str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(node.command, str):
        out.append(("command", node.command))
    elif isinstance(node.command, list):
        out += [(f"command[{i}]", c) for i, c in enumerate(node.command)]
    if node.script:
        out.append(("script", node.script))
    out += [(f"env.{k}", v) for k, v in env.items()]
    if node.workdir:
        out.append(("workdir", node.workdir))
    out.append(("kwargs", json.dumps(node.kwargs)))
    return out


def _resolve_node(
    nid: str, node: Node, defaults: NodeDefaults, wf: Workflow, errs: _Errors
) -> ResolvedNode | None:
    executor = _pick(node.executor, defaults.executor, "shell")
    _check_executor(nid, node, executor, errs)
    res: Resources = _pick(node.resources, defaults.resources, Resources())
    try:
        mem = memory_mb(res.memory)
    except ValueError as e:
        errs.add(nid, "resources.memory", str(e))
        mem = None
    try:
        wall = duration_s(res.walltime)
    except ValueError as e:
        errs.add(nid, "resources.walltime", str(e))
        wall = None
    disk = None
    try:
        disk = memory_mb(res.disk)
    except ValueError as e:
        errs.add(nid, "resources.disk", str(e))
    env = {**(defaults.env or {}), **(node.env or {})}
    declared = set(wf.params) | set(node.matrix or {})
    for field, text in _placeholder_texts(node, env):
        for name in template.placeholders(text):
            if not template.known_name(name, declared):
                errs.add(nid, field, f"unknown placeholder '{{{{{name}}}}}'", name=name)
    if node.matrix is not None:
        _check_matrix(nid, node.matrix, errs)
    spec = TaskSpec(
        node=nid,
        executor=executor,
        command=node.command,
        script=node.script,
        callable=node.callable,
        kwargs=node.kwargs,
        timeout_s=_pick(node.timeout, defaults.timeout, None),
        env=env,
        workdir=_pick(node.workdir, defaults.workdir, None),
        cores=res.cores,
        memory_mb=mem,
        gpus=res.gpus,
        walltime_s=wall,
        disk_mb=disk,
        labels=res.labels,
        inputs=node.inputs,
        outputs=node.outputs,
        pre=node.pre,
        post=node.post,
        pre_retries=node.pre_retries,
        pre_backoff_s=node.pre_backoff,
        host=node.host,
        image=node.image,
        init=node.init,
        wait_for=node.wait_for,
    )
    rclass = resource_class(res.class_, res.gpus, mem, executor)
    group = None
    if node.kind == "ensemble":
        group, problems = resolve_group(nid, node, wf, resolve)
        errs.items += problems
    return ResolvedNode(
        id=nid,
        spec=spec,
        rclass=rclass,
        priority=_pick(node.priority, defaults.priority, 0),
        max_attempts=1 + _pick(node.retries, defaults.retries, 0),
        backoff_s=_pick(node.retry_backoff, defaults.retry_backoff, 1.0),
        trigger=node.trigger,
        after=list(node.after),
        matrix=node.matrix,
        batch_key=_batch_key(spec, rclass),
        ensemble=group,
    )


def _check_matrix(nid: str, matrix: dict[str, list[Any]], errs: _Errors) -> None:
    if not matrix:
        errs.add(nid, "matrix", "a matrix needs at least one variable")
        return
    for k, values in matrix.items():
        if not values:
            errs.add(nid, f"matrix.{k}", "a matrix variable needs at least one value")
    size = math.prod(len(v) for v in matrix.values())
    if size > MAX_MATRIX_SIZE:
        errs.add(nid, "matrix", f"expands to {size} tasks (limit {MAX_MATRIX_SIZE})")


def _check_graph(wf: Workflow, errs: _Errors) -> list[str]:
    """Unknown references and cycles; returns the node ids in topological order."""
    graph: dict[str, list[str]] = {}
    for nid, node in wf.nodes.items():
        seen: set[str] = set()
        for i, dep in enumerate(node.after):
            if dep not in wf.nodes:
                errs.add(nid, f"after[{i}]", f"unknown dependency '{dep}'", dependency=dep)
            elif dep in seen:
                errs.add(nid, f"after[{i}]", f"dependency '{dep}' listed twice", dependency=dep)
            seen.add(dep)
        graph[nid] = [d for d in node.after if d in wf.nodes]
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        cycle = list(e.args[1])  # [a, b, ..., a]
        # graphlib lists each node before the one that depends on it: "a → b" = b is after a.
        errs.items.append(
            {
                "path": "$.nodes",
                "field": "after",
                "node": cycle[0],
                "message": "dependency cycle: " + " → ".join(cycle),
                "cycle": cycle,
            }
        )
        return []


def resolve(wf: Workflow) -> tuple[list[ResolvedNode], list[str]]:
    """Validate a workflow and apply defaults. Returns (nodes by id order, topological order)."""
    errs = _Errors()
    if not wf.nodes:
        errs.add(None, "nodes", "a workflow needs at least one node")
    defaults = wf.defaults or NodeDefaults()
    resolved = [_resolve_node(nid, node, defaults, wf, errs) for nid, node in wf.nodes.items()]
    order = _check_graph(wf, errs)
    errs.raise_if_any()
    return [r for r in resolved if r is not None], order


def validate(wf: Workflow) -> None:
    """Raise InvalidWorkflow listing every problem; return quietly when the workflow is sound."""
    resolve(wf)
