"""Expansion of a validated workflow into the tasks of one run (pure; no Redis).

A matrix node becomes one task per combination (`sim[0]`, `sim[1]`, …, values in the
task's `vars`); every dependent of a matrix node waits for all of its copies. An ensemble
becomes one copy of its sub-workflow per member (`ens[0].sim`, …; see broker.core.ensemble):
its sub-workflow's roots wait for the ensemble's own `after`, its dependents for every
member's sinks. Tasks come out in topological order, parents before children.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgspec

from broker.core.ensemble import EnsembleGroup, member_id
from broker.core.scoring import clamp_priority
from broker.core.validate import ResolvedNode, resolve
from broker.errors import InvalidWorkflow
from broker.spec import TaskSpec, Workflow

DEFAULT_MAX_TASKS = 200_000


class PlannedTask(msgspec.Struct, kw_only=True):
    """One task of a run, before it is written to Redis."""

    id: str
    tpl: str
    rclass: str
    priority: int
    parents: list[str]
    children: list[str] = []
    vars: dict[str, Any] | None = None
    batch_key: str
    max_attempts: int
    backoff_ms: int
    trigger: str
    group: str | None = None  # ensemble members: the ensemble node id…
    member: int | None = None  # …and the member index
    reused_from: str = ""  # redo: the run whose result this task reuses (written succeeded)
    result: str = ""  # redo: that result, as JSON text


class GroupInfo(msgspec.Struct, kw_only=True):
    """An ensemble in a plan: its tasks are plan.tasks[offset : offset + tasks]."""

    members: int
    tasks: int
    offset: int


class Plan(msgspec.Struct, kw_only=True):
    """Everything needed to write a run: parameters, one spec per node, the tasks."""

    params: dict[str, Any]
    priority: int
    templates: dict[str, TaskSpec]
    tasks: list[PlannedTask]
    groups: dict[str, GroupInfo] = {}

    @property
    def classes(self) -> set[str]:
        return {t.rclass for t in self.tasks}


def merge_params(declared: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults updated by overrides; an override of an undeclared parameter is an error."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise InvalidWorkflow(
            f"unknown parameter '{unknown[0]}' (declared: {', '.join(sorted(declared)) or 'none'})",
            {"field": f"params.{unknown[0]}", "unknown": unknown, "declared": sorted(declared)},
        )
    return {**declared, **overrides}


def _copies(
    node: ResolvedNode, prefix: str = "", base: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any] | None]]:
    """(task id, vars) of each copy; `base` (an ensemble member's params) under matrix values."""
    tid = prefix + node.id
    if node.matrix is None:
        return [(tid, base)]
    names = list(node.matrix)
    combos = itertools.product(*(node.matrix[n] for n in names))
    return [
        (f"{tid}[{i}]", {**(base or {}), **dict(zip(names, c, strict=True))})
        for i, c in enumerate(combos)
    ]


def _count(node: ResolvedNode) -> int:
    """Tasks the node becomes, computed without building them."""
    if node.ensemble is not None:
        group = node.ensemble
        return len(group.members) * sum(_count(n) for n in group.nodes.values())
    return math.prod(len(v) for v in node.matrix.values()) if node.matrix else 1


class _Builder:
    """Accumulates tasks in topological order and links children to parents."""

    def __init__(self, run_priority: int) -> None:
        self.run_priority = run_priority
        self.tasks: list[PlannedTask] = []
        self.index: dict[str, PlannedTask] = {}

    def add(
        self,
        node: ResolvedNode,
        copies: list[tuple[str, dict[str, Any] | None]],
        parents: list[str],
        *,
        extra_priority: int = 0,
        group: str | None = None,
        member: int | None = None,
    ) -> list[str]:
        """Add one task per copy; → their ids."""
        priority = clamp_priority(self.run_priority + extra_priority + node.priority)
        for tid, values in copies:
            task = PlannedTask(
                id=tid,
                tpl=node.spec.node,
                rclass=node.rclass,
                priority=priority,
                parents=parents,
                vars=values,
                batch_key=node.batch_key,
                max_attempts=node.max_attempts,
                backoff_ms=int(node.backoff_s * 1000),
                trigger=node.trigger,
                group=group,
                member=member,
            )
            self.tasks.append(task)
            self.index[tid] = task
            for p in parents:
                self.index[p].children.append(tid)
        return [tid for tid, _ in copies]

    def add_ensemble(self, group: EnsembleGroup, parents: list[str]) -> list[str]:
        """Every member's copy of the sub-workflow; → the member sinks' task ids."""
        sinks: list[str] = []
        for i, params in enumerate(group.members):
            prefix = f"{member_id(group.id, i)}."
            local: dict[str, list[str]] = {}
            for sid in group.order:
                sub = group.nodes[sid]
                ups = [tid for dep in sub.after for tid in local[dep]] if sub.after else parents
                local[sid] = self.add(
                    sub, _copies(sub, prefix, params), ups,
                    extra_priority=group.priority, group=group.id, member=i,
                )
            sinks += [tid for s in group.sinks for tid in local[s]]
        return sinks


def expand(
    wf: Workflow,
    params: dict[str, Any] | None = None,
    priority: int | None = None,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Plan:
    """Validate `wf` and expand it into a Plan. Raises InvalidWorkflow."""
    nodes, order = resolve(wf)
    merged = merge_params(wf.params, params)
    run_priority = wf.priority if priority is None else priority
    by_id = {n.id: n for n in nodes}
    total = sum(_count(n) for n in nodes)
    if total > max_tasks:
        raise InvalidWorkflow(
            f"the run would have {total} tasks (limit {max_tasks})",
            {"field": "nodes", "tasks": total, "limit": max_tasks},
        )
    build = _Builder(run_priority)
    outputs: dict[str, list[str]] = {}  # node id → the task ids its dependents wait for
    groups: dict[str, GroupInfo] = {}
    templates: dict[str, TaskSpec] = {}
    for nid in order:
        node = by_id[nid]
        parents = [tid for dep in node.after for tid in outputs[dep]]
        if node.ensemble is None:
            outputs[nid] = build.add(node, _copies(node), parents)
            templates[nid] = node.spec
            continue
        offset = len(build.tasks)
        outputs[nid] = build.add_ensemble(node.ensemble, parents)
        members = len(node.ensemble.members)
        groups[nid] = GroupInfo(members=members, tasks=len(build.tasks) - offset, offset=offset)
        templates.update({n.spec.node: n.spec for n in node.ensemble.nodes.values()})
    return Plan(
        params=merged, priority=run_priority, templates=templates, tasks=build.tasks, groups=groups
    )
