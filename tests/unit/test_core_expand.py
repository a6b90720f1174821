"""broker.core.expand: a validated workflow → the tasks of one run."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from broker.core.expand import DEFAULT_MAX_TASKS, Plan, PlannedTask, expand, merge_params
from broker.core.parse import parse_workflow
from broker.errors import InvalidWorkflow
from broker.spec import PRIORITY_MAX, PRIORITY_MIN, Workflow


def wf(nodes: dict[str, Any], **top: Any) -> Workflow:
    return parse_workflow(json.dumps({"name": "w", "nodes": nodes, **top}).encode())


def sh(cmd: str = "true", **kw: Any) -> dict[str, Any]:
    return {"command": cmd, **kw}


def tasks(plan: Plan) -> dict[str, PlannedTask]:
    return {t.id: t for t in plan.tasks}


def assert_topological(plan: Plan) -> None:
    pos = {t.id: i for i, t in enumerate(plan.tasks)}
    assert len(pos) == len(plan.tasks), "task ids are unique"
    for t in plan.tasks:
        for p in t.parents:
            assert pos[p] < pos[t.id], f"{p} must come before {t.id}"


def assert_edges_consistent(plan: Plan) -> None:
    """children is exactly the inverse of parents."""
    by = tasks(plan)
    for t in plan.tasks:
        for p in t.parents:
            assert t.id in by[p].children
        for c in t.children:
            assert t.id in by[c].parents
        assert len(set(t.parents)) == len(t.parents)
        assert len(set(t.children)) == len(t.children)


DIAMOND = {
    "combine": sh(after=["left", "right"]),
    "left": sh(after=["prepare"]),
    "right": sh(after=["prepare"]),
    "prepare": sh(),
}


def test_diamond() -> None:
    plan = expand(wf(DIAMOND))
    assert plan.tasks[0].id == "prepare"
    assert plan.tasks[-1].id == "combine"
    assert {t.id for t in plan.tasks[1:3]} == {"left", "right"}
    t = tasks(plan)
    assert t["prepare"].parents == [] and sorted(t["prepare"].children) == ["left", "right"]
    assert t["combine"].parents == ["left", "right"] and t["combine"].children == []
    assert t["left"].parents == ["prepare"] and t["left"].children == ["combine"]
    for task in plan.tasks:
        assert task.tpl == task.id
        assert task.vars is None
        assert task.rclass == "cpu"
        assert task.trigger == "all_success"
    assert set(plan.templates) == {"prepare", "left", "right", "combine"}
    assert plan.classes == {"cpu"}
    assert_topological(plan)
    assert_edges_consistent(plan)


def test_plan_carries_node_settings() -> None:
    plan = expand(
        wf(
            {
                "a": sh(retries=3, retry_backoff=2.5, resources={"gpus": 1}),
                "b": sh(after=["a"], trigger="all_done"),
            }
        )
    )
    t = tasks(plan)
    assert t["a"].max_attempts == 4
    assert t["a"].backoff_ms == 2500
    assert t["a"].rclass == "gpu"
    assert t["b"].backoff_ms == 1000
    assert t["b"].trigger == "all_done"
    assert plan.classes == {"gpu", "cpu"}
    assert t["a"].batch_key != t["b"].batch_key


def test_sub_millisecond_backoff_is_truncated() -> None:
    assert expand(wf({"a": sh(retry_backoff=0.0004)})).tasks[0].backoff_ms == 0


# -- matrix ---------------------------------------------------------------------------------


def test_matrix_copies_in_product_order_with_vars() -> None:
    plan = expand(
        wf({"sim": sh("run {{ x }} {{ y }}", matrix={"x": [1, 2], "y": ["a", "b", "c"]})})
    )
    assert [t.id for t in plan.tasks] == [f"sim[{i}]" for i in range(6)]
    assert [t.vars for t in plan.tasks] == [
        {"x": 1, "y": "a"},
        {"x": 1, "y": "b"},
        {"x": 1, "y": "c"},
        {"x": 2, "y": "a"},
        {"x": 2, "y": "b"},
        {"x": 2, "y": "c"},
    ]
    assert {t.tpl for t in plan.tasks} == {"sim"}
    assert set(plan.templates) == {"sim"}  # one spec shared by every copy


def test_matrix_of_one_value_still_gets_an_index() -> None:
    plan = expand(wf({"a": sh(matrix={"v": [None]})}))
    assert [(t.id, t.vars) for t in plan.tasks] == [("a[0]", {"v": None})]


def test_matrix_values_keep_their_json_types() -> None:
    plan = expand(wf({"a": sh(matrix={"v": [1, 2.5, "s", True, None, [1], {"k": 1}]})}))
    assert [t.vars["v"] for t in plan.tasks if t.vars] == [1, 2.5, "s", True, None, [1], {"k": 1}]


def test_dependents_wait_on_every_copy() -> None:
    plan = expand(
        wf(
            {
                "prep": sh(),
                "sim": sh("{{ v }}", after=["prep"], matrix={"v": [1, 2, 3]}),
                "gather": sh(after=["sim"]),
            }
        )
    )
    t = tasks(plan)
    copies = ["sim[0]", "sim[1]", "sim[2]"]
    assert t["gather"].parents == copies
    assert t["prep"].children == copies
    for c in copies:
        assert t[c].parents == ["prep"]
        assert t[c].children == ["gather"]
    assert [x.id for x in plan.tasks] == ["prep", *copies, "gather"]
    assert_edges_consistent(plan)


def test_matrix_after_matrix_is_all_to_all() -> None:
    plan = expand(
        wf(
            {
                "a": sh("{{ i }}", matrix={"i": [0, 1]}),
                "b": sh("{{ j }}", after=["a"], matrix={"j": [0, 1, 2]}),
            }
        )
    )
    t = tasks(plan)
    for j in range(3):
        assert t[f"b[{j}]"].parents == ["a[0]", "a[1]"]
    for i in range(2):
        assert t[f"a[{i}]"].children == ["b[0]", "b[1]", "b[2]"]
    assert len(plan.tasks) == 5


def test_matrix_copies_do_not_share_children_lists() -> None:
    plan = expand(wf({"a": sh("{{ i }}", matrix={"i": [0, 1]}), "b": sh(after=["a"])}))
    a0, a1 = plan.tasks[0], plan.tasks[1]
    assert a0.children is not a1.children
    a0.children.append("x")
    assert a1.children == ["b"]


# -- parameters -----------------------------------------------------------------------------


def test_params_defaults_and_overrides() -> None:
    w = wf({"a": sh("echo {{ n }} {{ s }}")}, params={"n": 1, "s": "x"})
    assert expand(w).params == {"n": 1, "s": "x"}
    assert expand(w, params={"n": 5}).params == {"n": 5, "s": "x"}
    assert expand(w, params={}).params == {"n": 1, "s": "x"}
    assert expand(w, params=None).params == {"n": 1, "s": "x"}
    # the workflow's own defaults are untouched
    assert w.params == {"n": 1, "s": "x"}


def test_params_override_may_change_type() -> None:
    w = wf({"a": sh("echo {{ n }}")}, params={"n": 1})
    assert expand(w, params={"n": [1, 2]}).params == {"n": [1, 2]}


def test_unknown_param_rejected() -> None:
    w = wf({"a": sh("echo {{ n }}")}, params={"n": 1, "m": 2})
    with pytest.raises(InvalidWorkflow) as ei:
        expand(w, params={"n": 2, "zz": 1, "aa": 0})
    e = ei.value
    assert e.message == "unknown parameter 'aa' (declared: m, n)"
    assert e.details == {"field": "params.aa", "unknown": ["aa", "zz"], "declared": ["m", "n"]}


def test_unknown_param_when_none_declared() -> None:
    with pytest.raises(InvalidWorkflow, match=r"declared: none"):
        merge_params({}, {"x": 1})


def test_expand_validates_first() -> None:
    with pytest.raises(InvalidWorkflow) as ei:
        expand(wf({"a": sh(after=["ghost"])}))
    assert ei.value.details["field"] == "after[0]"


# -- priority -------------------------------------------------------------------------------


def test_priority_is_run_plus_node() -> None:
    w = wf(
        {"a": sh(priority=5), "b": sh(), "c": sh(priority=-20)},
        priority=10,
        defaults={"priority": 1},
    )
    plan = expand(w)
    assert plan.priority == 10
    assert [t.priority for t in plan.tasks] == [15, 11, -10]
    plan = expand(w, priority=-3)
    assert plan.priority == -3
    assert [t.priority for t in plan.tasks] == [2, -2, -23]


@pytest.mark.parametrize(
    ("run", "node", "expected"),
    [
        (1000, 1000, PRIORITY_MAX),
        (900, 200, PRIORITY_MAX),
        (-1000, -1000, PRIORITY_MIN),
        (-900, -200, PRIORITY_MIN),
        (10**9, 0, PRIORITY_MAX),
        (-(10**9), 0, PRIORITY_MIN),
        (1000, -1000, 0),
    ],
)
def test_priority_clamped(run: int, node: int, expected: int) -> None:
    plan = expand(wf({"a": sh(priority=node)}), priority=run)
    assert plan.tasks[0].priority == expected


# -- limits ---------------------------------------------------------------------------------


def test_max_tasks() -> None:
    w = wf({"a": sh(), "b": sh("{{ v }}", matrix={"v": list(range(9))}, after=["a"])})
    assert len(expand(w, max_tasks=10).tasks) == 10
    with pytest.raises(InvalidWorkflow) as ei:
        expand(w, max_tasks=9)
    assert ei.value.details == {"field": "nodes", "tasks": 10, "limit": 9}
    assert "10 tasks (limit 9)" in ei.value.message


def test_default_max_tasks() -> None:
    assert DEFAULT_MAX_TASKS == 200_000
    w = wf({f"n{i}": sh("{{ v }}", matrix={"v": list(range(100_000))}) for i in range(3)})
    with pytest.raises(InvalidWorkflow):
        expand(w)


# -- random DAGs ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_random_dags_expand_consistently(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.randint(1, 30)
    nodes: dict[str, Any] = {}
    names = [f"n{i}" for i in range(n)]
    for i, name in enumerate(names):
        after = rnd.sample(names[:i], rnd.randint(0, min(i, 3)))
        node = sh(after=after)
        if rnd.random() < 0.3:
            node["matrix"] = {"v": list(range(rnd.randint(1, 4)))}
        nodes[name] = node
    items = list(nodes.items())
    rnd.shuffle(items)  # document order must not matter
    plan = expand(wf(dict(items)))
    assert_topological(plan)
    assert_edges_consistent(plan)
    expected = sum(len(nd.get("matrix", {}).get("v", [0])) for nd in nodes.values())
    assert len(plan.tasks) == expected
    by = tasks(plan)
    for t in plan.tasks:
        deps = nodes[t.tpl]["after"]
        assert {by[p].tpl for p in t.parents} == set(deps)
