"""Expansion of a validated workflow into the tasks of one run (pure; no Redis).

A matrix node becomes one task per combination (`sim[0]`, `sim[1]`, …, values in the
task's `vars`); every dependent of a matrix node waits for all of its copies. Tasks come
out in topological order, parents before children.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

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


class Plan(msgspec.Struct, kw_only=True):
    """Everything needed to write a run: parameters, one spec per node, the tasks."""

    params: dict[str, Any]
    priority: int
    templates: dict[str, TaskSpec]
    tasks: list[PlannedTask]

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


def _copies(node: ResolvedNode) -> list[tuple[str, dict[str, Any] | None]]:
    if node.matrix is None:
        return [(node.id, None)]
    names = list(node.matrix)
    combos = itertools.product(*(node.matrix[n] for n in names))
    return [(f"{node.id}[{i}]", dict(zip(names, c, strict=True))) for i, c in enumerate(combos)]


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
    copies = {nid: _copies(by_id[nid]) for nid in order}
    total = sum(len(c) for c in copies.values())
    if total > max_tasks:
        raise InvalidWorkflow(
            f"the run would have {total} tasks (limit {max_tasks})",
            {"field": "nodes", "tasks": total, "limit": max_tasks},
        )
    tasks: list[PlannedTask] = []
    index: dict[str, PlannedTask] = {}
    for nid in order:
        node = by_id[nid]
        parents = [tid for dep in node.after for tid, _ in copies[dep]]
        for tid, values in copies[nid]:
            task = PlannedTask(
                id=tid,
                tpl=nid,
                rclass=node.rclass,
                priority=clamp_priority(run_priority + node.priority),
                parents=parents,
                vars=values,
                batch_key=node.batch_key,
                max_attempts=node.max_attempts,
                backoff_ms=int(node.backoff_s * 1000),
                trigger=node.trigger,
            )
            tasks.append(task)
            index[tid] = task
            for p in parents:
                index[p].children.append(tid)
    return Plan(
        params=merged,
        priority=run_priority,
        templates={n.id: n.spec for n in nodes},
        tasks=tasks,
    )
