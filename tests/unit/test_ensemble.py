"""Ensembles: validation of the sub-workflow and its expansion into member copies (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core.ensemble import merged_defaults, parameter_sets
from broker.core.expand import Plan, PlannedTask, expand
from broker.core.parse import parse_workflow
from broker.engine.redo import mark_reused, named_tasks
from broker.errors import InvalidWorkflow
from broker.spec import NodeDefaults, Workflow


def wf(nodes: dict[str, Any], **top: Any) -> Workflow:
    return parse_workflow(json.dumps({"name": "w", "nodes": nodes, **top}).encode())


def ensemble(sub: dict[str, Any], parameters: Any, **kw: Any) -> dict[str, Any]:
    return {"kind": "ensemble", "workflow": sub, "parameters": parameters, **kw}


def tasks(plan: Plan) -> dict[str, PlannedTask]:
    return {t.id: t for t in plan.tasks}


def problems(workflow: Workflow) -> list[dict[str, Any]]:
    with pytest.raises(InvalidWorkflow) as e:
        expand(workflow)
    return list(e.value.details["errors"])


SWEEP = {
    "prep": {"command": "echo {{ steps }}"},
    "ens": ensemble(
        {
            "params": {"mesh": "coarse"},
            "nodes": {
                "sim": {"command": "sim --re {{ re }} --t {{ t }} --mesh {{ mesh }}"},
                "post": {"command": "post {{ re }}", "after": ["sim"]},
            },
        },
        {"re": [100, 200, 400], "t": [1, 2, 3, 4]},
        after=["prep"],
    ),
    "join": {"command": "true", "after": ["ens"]},
}


def test_matrix_parameters_give_one_copy_per_combination() -> None:
    plan = expand(wf(SWEEP, params={"steps": 5}))
    t = tasks(plan)
    assert len(plan.tasks) == 1 + 12 * 2 + 1
    assert t["ens[0].sim"].vars == {"mesh": "coarse", "re": 100, "t": 1}
    assert t["ens[5].sim"].vars == {"mesh": "coarse", "re": 200, "t": 2}
    assert t["ens[11].post"].vars == {"mesh": "coarse", "re": 400, "t": 4}
    assert (t["ens[7].post"].group, t["ens[7].post"].member) == ("ens", 7)
    assert t["ens[7].post"].tpl == "ens.post"
    assert t["prep"].group is None and t["join"].group is None
    # sub-workflow roots wait for the ensemble's `after`; members depend only within themselves
    assert t["ens[3].sim"].parents == ["prep"]
    assert t["ens[3].post"].parents == ["ens[3].sim"]
    assert t["ens[3].sim"].children == ["ens[3].post"]
    # dependents wait for every member's sinks
    assert t["join"].parents == [f"ens[{i}].post" for i in range(12)]
    assert len(t["prep"].children) == 12
    # one spec per sub-node, shared by the members; none for the ensemble node itself
    assert set(plan.templates) == {"prep", "ens.sim", "ens.post", "join"}
    assert plan.templates["ens.sim"].node == "ens.sim"
    assert plan.groups["ens"].members == 12 and plan.groups["ens"].tasks == 24
    off = plan.groups["ens"].offset
    assert {x.group for x in plan.tasks[off : off + 24]} == {"ens"}
    pos = {x.id: i for i, x in enumerate(plan.tasks)}
    assert all(pos[p] < pos[x.id] for x in plan.tasks for p in x.parents)


def test_list_parameters_sub_matrix_defaults_and_priority() -> None:
    nodes = {
        "ens": ensemble(
            {
                "params": {"a": 1, "b": "x"},
                "defaults": {"executor": "python", "env": {"B": "2"}, "retries": 3},
                "nodes": {
                    "one": {"script": "print({{ a }})", "matrix": {"k": [1, 2]}, "priority": 5},
                    "two": {"executor": "shell", "command": "echo {{ b }}", "after": ["one"]},
                },
            },
            [{"a": 10}, {}, {"a": 30, "b": "z"}],
            priority=100,
        ),
    }
    plan = expand(wf(nodes, priority=1, defaults={"env": {"A": "1"}, "timeout": 9}))
    t = tasks(plan)
    assert [x.id for x in plan.tasks[:3]] == ["ens[0].one[0]", "ens[0].one[1]", "ens[0].two"]
    assert t["ens[0].one[1]"].vars == {"a": 10, "b": "x", "k": 2}
    assert t["ens[1].two"].vars == {"a": 1, "b": "x"}
    assert t["ens[2].two"].vars == {"a": 30, "b": "z"}
    assert t["ens[2].two"].parents == ["ens[2].one[0]", "ens[2].one[1]"]
    assert t["ens[0].one[0]"].priority == 1 + 100 + 5 and t["ens[0].two"].priority == 101
    one, two = plan.templates["ens.one"], plan.templates["ens.two"]
    assert one.executor == "python" and two.executor == "shell"
    assert one.env == {"A": "1", "B": "2"} and one.timeout_s == 9
    assert t["ens[0].two"].max_attempts == 4


def test_ensemble_after_ensemble_waits_for_the_sinks() -> None:
    sub = {"nodes": {"a": {"command": "true"}, "b": {"command": "true"},
                     "c": {"command": "true", "after": ["a"]}}}
    plan = expand(wf({"e1": ensemble(sub, [{}, {}]),
                      "e2": ensemble(sub, [{}], after=["e1"])}))
    t = tasks(plan)
    sinks = ["e1[0].b", "e1[0].c", "e1[1].b", "e1[1].c"]
    assert sorted(t["e2[0].a"].parents) == sinks and sorted(t["e2[0].b"].parents) == sinks
    assert set(plan.groups) == {"e1", "e2"}


def test_parameter_sets_and_merged_defaults() -> None:
    assert parameter_sets({"x": [1, 2], "y": ["a"]}) == [{"x": 1, "y": "a"}, {"x": 2, "y": "a"}]
    assert parameter_sets([{"x": 1}, {}]) == [{"x": 1}, {}]
    outer = NodeDefaults(executor="shell", env={"A": "1", "B": "1"}, timeout=5)
    got = merged_defaults(outer, NodeDefaults(env={"B": "2"}, retries=2))
    assert got == NodeDefaults(executor="shell", env={"A": "1", "B": "2"}, timeout=5, retries=2)
    assert merged_defaults(None, None) == NodeDefaults()


def test_sub_workflow_errors_name_the_ensemble_and_the_sub_node() -> None:
    nodes = {
        "prep": {"command": "true"},
        "ens": ensemble(
            {"nodes": {"s": {"command": "echo {{ nope }}", "after": ["prep"]},
                       "u": {"executor": "python"}}},
            [{"x": 1}],
        ),
    }
    errs = problems(wf(nodes))
    by_field = {e["field"]: e for e in errs}
    assert by_field["workflow.nodes.s.command"]["message"] == "unknown placeholder '{{nope}}'"
    assert by_field["workflow.nodes.s.after[0]"]["message"] == "unknown dependency 'prep'"
    assert "workflow.nodes.u.script" in by_field
    assert all(e["node"] == "ens" for e in errs)
    assert by_field["workflow.nodes.s.command"]["path"] == "$.nodes.ens.workflow.nodes.s.command"


@pytest.mark.parametrize(
    ("ens", "field", "fragment"),
    [
        (ensemble({"nodes": {"s": {"command": "echo {{ x }}"}}}, [{"x": 1}, {"y": 2}]),
         "parameters[1]", "member 1 has no value for 'x'"),
        (ensemble({"nodes": {"s": {"command": "true"}}}, {"bad-name": [1]}),
         "parameters.bad-name", "not a parameter name"),
        (ensemble({"nodes": {"s": {"command": "true"}}}, {"x": []}),
         "parameters.x", "at least one value"),
        (ensemble({"nodes": {"s": ensemble({"nodes": {"t": {"command": "true"}}}, [{}])}}, [{}]),
         "workflow.nodes.s.kind", "do not nest"),
        (ensemble({"nodes": {"s": {"command": "true"}}}, [{}], retries=2),
         "retries", "does not apply to an ensemble"),
        (ensemble({"nodes": {"s": {"command": "true"}}}, [{}], command="true"),
         "kind", "runs its workflow"),
        (ensemble({"nodes": {}}, [{}]), "workflow.nodes", "at least one node"),
        ({"kind": "ensemble", "parameters": [{}]}, "workflow", "needs a workflow"),
    ],
)
def test_invalid_ensembles(ens: dict[str, Any], field: str, fragment: str) -> None:
    errs = problems(wf({"ens": ens}))
    assert any(e["field"] == field and fragment in e["message"] for e in errs), errs


def test_declared_default_fills_a_missing_member_value() -> None:
    sub = {"params": {"x": 0}, "nodes": {"s": {"command": "echo {{ x }}"}}}
    t = tasks(expand(wf({"ens": ensemble(sub, [{"x": 1}, {}])})))
    assert t["ens[1].s"].vars == {"x": 0}


def test_template_id_may_not_clash_with_a_node() -> None:
    nodes = {"ens": ensemble({"nodes": {"s": {"command": "true"}}}, [{}]),
             "ens.s": {"command": "true"}}
    errs = problems(wf(nodes))
    assert errs[0]["field"] == "workflow.nodes.s" and "also a node" in errs[0]["message"]


def test_task_limit_is_checked_before_expanding() -> None:
    sub = {"nodes": {"s": {"command": "true", "matrix": {"k": list(range(1000))}}}}
    with pytest.raises(InvalidWorkflow, match="would have 1000000 tasks"):
        expand(wf({"ens": ensemble(sub, {"i": list(range(1000))})}))


def test_redo_selects_ensembles_members_and_sub_nodes() -> None:
    plan = expand(wf(SWEEP, params={"steps": 5}))
    assert len(named_tasks(plan, "ens")) == 24
    assert sorted(named_tasks(plan, "ens.post")) == sorted(f"ens[{i}].post" for i in range(12))
    assert named_tasks(plan, "ens[4]") == ["ens[4].sim", "ens[4].post"]
    assert named_tasks(plan, "ens[4].sim") == ["ens[4].sim"]
    assert named_tasks(plan, "nope") == []
    old = {t.id: ("succeeded", json.dumps(t.id)) for t in plan.tasks}
    rerun = mark_reused(plan, named_tasks(plan, "ens[4].sim"), old, "rold")
    assert rerun == {"ens[4].sim", "ens[4].post", "join"}
    t = tasks(plan)
    assert t["ens[3].post"].reused_from == "rold" and t["ens[3].post"].result == '"ens[3].post"'
    assert t["join"].reused_from == "" and t["prep"].reused_from == "rold"


def test_redo_also_reruns_what_did_not_succeed() -> None:
    plan = expand(wf(SWEEP, params={"steps": 5}))
    old = {t.id: ("succeeded", "") for t in plan.tasks}
    old["ens[1].sim"] = ("failed", None)
    old["ens[1].post"] = ("upstream_failed", None)
    rerun = mark_reused(plan, ["ens[9].post"], old, "rold")
    assert rerun == {"ens[9].post", "ens[1].sim", "ens[1].post", "join"}
