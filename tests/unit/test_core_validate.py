"""broker.core.validate: defaults, references, cycles, placeholders, executors, resources."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core.parse import parse_workflow
from broker.core.validate import MAX_MATRIX_SIZE, ResolvedNode, resolve, validate
from broker.errors import InvalidWorkflow
from broker.spec import TaskSpec, Workflow


def wf(nodes: dict[str, Any], **top: Any) -> Workflow:
    return parse_workflow(json.dumps({"name": "w", "nodes": nodes, **top}).encode())


def sh(cmd: str = "true", **kw: Any) -> dict[str, Any]:
    return {"command": cmd, **kw}


def errors_of(w: Workflow) -> InvalidWorkflow:
    with pytest.raises(InvalidWorkflow) as ei:
        resolve(w)
    return ei.value


def by_id(w: Workflow) -> dict[str, ResolvedNode]:
    nodes, _ = resolve(w)
    return {n.id: n for n in nodes}


def error_fields(e: InvalidWorkflow) -> list[tuple[str | None, str]]:
    return [(item.get("node"), item["field"]) for item in e.details["errors"]]


# -- defaults -------------------------------------------------------------------------------


def test_builtin_defaults() -> None:
    n = by_id(wf({"a": sh("echo hi")}))["a"]
    assert n.spec == TaskSpec(node="a", executor="shell", command="echo hi")
    assert n.rclass == "cpu"
    assert n.priority == 0
    assert n.max_attempts == 1
    assert n.backoff_s == 1.0
    assert n.trigger == "all_success"
    assert n.after == []
    assert n.matrix is None
    assert n.spec.timeout_s is None and n.spec.memory_mb is None and n.spec.walltime_s is None
    assert n.spec.cores == 1 and n.spec.gpus == 0


def test_workflow_defaults_apply_and_nodes_override_them() -> None:
    w = wf(
        {
            "plain": sh(),
            "own": sh(
                priority=7,
                retries=0,
                retry_backoff=9,
                timeout=5,
                workdir="/own",
                env={"B": "node", "C": "3"},
                resources={"cores": 4},
            ),
        },
        defaults={
            "priority": 3,
            "retries": 2,
            "retry_backoff": 0.25,
            "timeout": 60,
            "env": {"A": "1", "B": "default"},
            "workdir": "/data",
            "resources": {"memory": "2G", "cores": 2},
        },
    )
    n = by_id(w)
    plain, own = n["plain"], n["own"]
    assert (plain.priority, plain.max_attempts, plain.backoff_s) == (3, 3, 0.25)
    assert plain.spec.timeout_s == 60
    assert plain.spec.workdir == "/data"
    assert plain.spec.env == {"A": "1", "B": "default"}
    assert (plain.spec.memory_mb, plain.spec.cores) == (2048, 2)
    assert (own.priority, own.max_attempts, own.backoff_s) == (7, 1, 9)
    assert own.spec.timeout_s == 5
    assert own.spec.workdir == "/own"
    # env merges key by key, the node winning
    assert own.spec.env == {"A": "1", "B": "node", "C": "3"}
    # resources replace the defaults' resources as a whole
    assert (own.spec.memory_mb, own.spec.cores) == (None, 4)


def test_default_executor() -> None:
    n = by_id(wf({"a": {"script": "print(1)"}}, defaults={"executor": "python"}))["a"]
    assert n.spec.executor == "python"
    assert n.spec.script == "print(1)"


def test_retries_become_max_attempts() -> None:
    assert by_id(wf({"a": sh(retries=4)}))["a"].max_attempts == 5


def test_zero_priority_on_a_node_beats_the_default() -> None:
    assert by_id(wf({"a": sh(priority=0)}, defaults={"priority": 9}))["a"].priority == 0


def test_resources_are_converted() -> None:
    n = by_id(
        wf({"a": sh(resources={"memory": "1.5G", "walltime": "01:30:00", "gpus": 2, "cores": 0.5})})
    )["a"]
    assert n.spec.memory_mb == 1536
    assert n.spec.walltime_s == 5400.0
    assert n.spec.gpus == 2
    assert n.spec.cores == 0.5
    assert n.rclass == "gpu"


@pytest.mark.parametrize(
    ("resources", "rclass"),
    [
        ({}, "cpu"),
        ({"memory": "63G"}, "cpu"),
        ({"memory": "64G"}, "bigmem"),
        ({"memory": 65536}, "bigmem"),
        ({"gpus": 1, "memory": "128G"}, "gpu"),
        ({"class": "special", "gpus": 1}, "special"),
    ],
)
def test_resource_class(resources: dict[str, Any], rclass: str) -> None:
    assert by_id(wf({"a": sh(resources=resources)}))["a"].rclass == rclass


def test_batch_key_groups_equal_requirements() -> None:
    n = by_id(
        wf(
            {
                "a": sh("one"),
                "b": sh("two"),
                "c": sh("three", resources={"cores": 2}),
                "d": sh("four", env={"X": "1"}),
                "e": {"executor": "python", "script": "pass"},
            }
        )
    )
    assert n["a"].batch_key == n["b"].batch_key
    assert n["a"].batch_key.startswith("shell:cpu:")
    assert len({n[k].batch_key for k in "acde"}) == 4
    assert n["e"].batch_key.startswith("python:cpu:")


def test_topological_order_and_validate_is_quiet() -> None:
    w = wf({"d": sh(after=["b", "c"]), "c": sh(after=["a"]), "b": sh(after=["a"]), "a": sh()})
    validate(w)
    nodes, order = resolve(w)
    assert [n.id for n in nodes] == ["d", "c", "b", "a"]  # document order
    pos = {nid: i for i, nid in enumerate(order)}
    assert sorted(order) == ["a", "b", "c", "d"]
    assert pos["a"] < pos["b"] < pos["d"] and pos["a"] < pos["c"] < pos["d"]


# -- graph errors ---------------------------------------------------------------------------


def test_unknown_dependency_names_node_and_index() -> None:
    e = errors_of(wf({"a": sh(), "b": sh(after=["a", "nope"])}))
    assert e.message == "node 'b', field 'after[1]': unknown dependency 'nope'"
    assert e.details["node"] == "b"
    assert e.details["field"] == "after[1]"
    assert e.details["path"] == "$.nodes.b.after[1]"
    assert e.details["dependency"] == "nope"
    assert e.status == 422 and e.code == "invalid_workflow"


def test_duplicate_dependency() -> None:
    e = errors_of(wf({"a": sh(), "b": sh(after=["a", "a"])}))
    assert error_fields(e) == [("b", "after[1]")]
    assert "twice" in e.details["errors"][0]["message"]


def test_self_dependency_is_a_cycle_of_one() -> None:
    e = errors_of(wf({"a": sh(after=["a"]), "b": sh()}))
    assert e.details["node"] == "a"
    assert e.details["field"] == "after"
    assert e.details["cycle"] == ["a", "a"]
    assert "dependency cycle: a → a" in e.message


def test_three_node_cycle_reported_as_its_nodes() -> None:
    nodes = {
        "root": sh(),
        "a": sh(after=["root", "c"]),
        "b": sh(after=["a"]),
        "c": sh(after=["b"]),
        "leaf": sh(after=["c"]),
    }
    e = errors_of(wf(nodes))
    cycle = e.details["cycle"]
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
    assert e.details["node"] in {"a", "b", "c"}
    assert e.details["path"] == "$.nodes"
    for name in ("a", "b", "c"):
        assert name in e.message
    assert "root" not in cycle and "leaf" not in cycle


def test_cycle_reads_in_run_order() -> None:
    """`x → y` in the message means x runs before y, i.e. y lists x in `after`."""
    nodes = {"a": sh(after=["c"]), "b": sh(after=["a"]), "c": sh(after=["b"])}
    w = wf(nodes)
    e = errors_of(w)
    cycle = e.details["cycle"]
    for x, y in zip(cycle, cycle[1:], strict=False):
        assert x in w.nodes[y].after, f"{x} → {y} but {y}.after = {w.nodes[y].after}"
    assert e.details["errors"][0]["message"] == "dependency cycle: " + " → ".join(cycle)


def test_unknown_dependency_does_not_hide_a_cycle() -> None:
    e = errors_of(wf({"a": sh(after=["b", "ghost"]), "b": sh(after=["a"])}))
    kinds = [item["message"] for item in e.details["errors"]]
    assert any("unknown dependency 'ghost'" in m for m in kinds)
    assert any(m.startswith("dependency cycle") for m in kinds)


def test_empty_workflow() -> None:
    e = errors_of(wf({}))
    assert e.details["field"] == "nodes"
    assert e.details["path"] == "$.nodes"
    assert "node" not in e.details


# -- executors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({}, "command"),  # shell without command
        ({"command": ""}, "command"),
        ({"command": []}, "command"),
        ({"executor": "python"}, "script"),
        ({"executor": "python", "script": "x", "callable": "m:f"}, "script"),
        ({"executor": "python", "script": "x", "command": ["python", "-c", "1"]}, "script"),
        ({"executor": "noop", "command": "x"}, "command"),
        ({"executor": "noop", "script": "x"}, "command"),
        ({"executor": "noop", "callable": "m:f"}, "command"),
        ({"command": "x", "kwargs": {"a": 1}}, "kwargs"),
        ({"executor": "noop", "kwargs": {"a": 1}}, "kwargs"),
    ],
)
def test_executor_requirements(node: dict[str, Any], field: str) -> None:
    e = errors_of(wf({"n": node}))
    assert ("n", field) in error_fields(e)


@pytest.mark.parametrize(
    "node",
    [
        {"command": "echo"},
        {"command": ["echo", "x"]},
        {"executor": "python", "script": "print(1)"},
        {"executor": "python", "callable": "os.path:join", "kwargs": {"a": "b"}},
        {"executor": "python", "command": ["-c", "print(1)"]},
        {"executor": "noop"},
    ],
)
def test_executor_requirements_met(node: dict[str, Any]) -> None:
    resolve(wf({"n": node}))


# -- placeholders ---------------------------------------------------------------------------


def test_known_placeholders() -> None:
    w = wf(
        {
            "a": sh(
                "run {{ n }} {{params.n}} {{ v }} {{ matrix.v }}"
                " {{run}} {{node}} {{task}} {{attempt}}",
                matrix={"v": [1, 2]},
                env={"N": "{{ n }}"},
                workdir="/w/{{ run }}",
            ),
            "b": {
                "executor": "python",
                "callable": "m:f",
                "kwargs": {"n": "{{ n }}", "l": ["{{ run }}"]},
            },
        },
        params={"n": 1},
    )
    resolve(w)


@pytest.mark.parametrize(
    ("node", "field"),
    [
        (sh("echo {{ missing }}"), "command"),
        ({"command": ["echo", "ok", "{{ missing }}"]}, "command[2]"),
        ({"executor": "python", "script": "print('{{missing}}')"}, "script"),
        (sh(env={"E": "{{ missing }}"}), "env.E"),
        (sh(workdir="/x/{{ missing }}"), "workdir"),
        ({"executor": "python", "callable": "m:f", "kwargs": {"k": ["{{ missing }}"]}}, "kwargs"),
        (sh("echo {{ params.missing }}"), "command"),
    ],
)
def test_unknown_placeholder(node: dict[str, Any], field: str) -> None:
    e = errors_of(wf({"a": node}, params={"n": 1}))
    item = e.details["errors"][0]
    assert (item["node"], item["field"]) == ("a", field)
    assert item["name"] in {"missing", "params.missing"}
    assert "unknown placeholder" in item["message"]


def test_matrix_var_of_another_node_is_unknown() -> None:
    e = errors_of(
        wf({"a": sh("echo {{ v }}", matrix={"v": [1]}), "b": sh("echo {{ v }}", after=["a"])})
    )
    assert error_fields(e) == [("b", "command")]


def test_placeholder_in_default_env_is_checked_per_node() -> None:
    e = errors_of(wf({"a": sh(), "b": sh()}, defaults={"env": {"X": "{{ nope }}"}}))
    assert error_fields(e) == [("a", "env.X"), ("b", "env.X")]


# -- resources ------------------------------------------------------------------------------


@pytest.mark.parametrize("memory", ["lots", "4 GigaBytes", "-1G", "G", "1.2.3M", ""])
def test_bad_memory(memory: str) -> None:
    e = errors_of(wf({"a": sh(resources={"memory": memory})}))
    assert error_fields(e) == [("a", "resources.memory")]
    assert e.details["path"] == "$.nodes.a.resources.memory"


@pytest.mark.parametrize("walltime", ["soon", "1:2:3:4", "x-01:00:00", "1h30m", "", "1:-2"])
def test_bad_walltime(walltime: str) -> None:
    e = errors_of(wf({"a": sh(resources={"walltime": walltime})}))
    assert error_fields(e) == [("a", "resources.walltime")]


@pytest.mark.parametrize("disk", ["lots", "-1G", "10 parsecs"])
def test_bad_disk(disk: str) -> None:
    """`disk` takes the same sizes as `memory`; a malformed one must not be accepted silently."""
    e = errors_of(wf({"a": sh(resources={"disk": disk})}))
    assert error_fields(e) == [("a", "resources.disk")]


def test_bad_resources_in_defaults_reported_per_node() -> None:
    e = errors_of(
        wf(
            {"a": sh(), "b": sh(resources={"memory": "1G"})},
            defaults={"resources": {"memory": "huge"}},
        )
    )
    assert error_fields(e) == [("a", "resources.memory")]


# -- matrix ---------------------------------------------------------------------------------


def test_empty_matrix() -> None:
    e = errors_of(wf({"a": sh(matrix={})}))
    assert error_fields(e) == [("a", "matrix")]


def test_matrix_variable_without_values() -> None:
    e = errors_of(wf({"a": sh(matrix={"x": [1], "y": []})}))
    assert error_fields(e) == [("a", "matrix.y")]
    assert e.details["path"] == "$.nodes.a.matrix.y"


def test_matrix_too_large() -> None:
    side = 317  # 317**2 = 100_489 > 100_000
    e = errors_of(wf({"a": sh(matrix={"x": list(range(side)), "y": list(range(side))})}))
    assert error_fields(e) == [("a", "matrix")]
    assert str(side * side) in e.details["errors"][0]["message"]


def test_matrix_at_the_limit_is_fine() -> None:
    resolve(
        wf({"a": sh(matrix={"x": list(range(1000)), "y": list(range(MAX_MATRIX_SIZE // 1000))})})
    )


# -- everything at once ---------------------------------------------------------------------


def test_every_error_is_reported_at_once() -> None:
    w = wf(
        {
            "shell_no_cmd": {},
            "py_two": {"executor": "python", "script": "x", "callable": "m:f"},
            "mem": sh(resources={"memory": "lots", "walltime": "never"}),
            "ph": sh("echo {{ nope }}"),
            "dep": sh(after=["ghost"]),
            "mx": sh(matrix={"v": []}),
            "loop1": sh(after=["loop2"]),
            "loop2": sh(after=["loop1"]),
        }
    )
    e = errors_of(w)
    got = set(error_fields(e))
    assert {
        ("shell_no_cmd", "command"),
        ("py_two", "script"),
        ("mem", "resources.memory"),
        ("mem", "resources.walltime"),
        ("ph", "command"),
        ("dep", "after[0]"),
        ("mx", "matrix.v"),
    } <= got
    assert any(item.get("cycle") for item in e.details["errors"])
    assert len(e.details["errors"]) == 8
    assert e.message.endswith("(and 7 more)")
    first = e.details["errors"][0]
    # the top-level details repeat the first error (without its message)
    assert e.details["node"] == first["node"] and e.details["field"] == first["field"]
    for item in e.details["errors"]:
        assert set(item) >= {"path", "field", "message"}
        if "node" in item and "cycle" not in item:
            assert item["path"] == f"$.nodes.{item['node']}.{item['field']}"


def test_error_is_json_serialisable() -> None:
    e = errors_of(wf({"a": sh(after=["a"])}))
    assert json.loads(json.dumps(e.to_dict()))["error"]["details"]["cycle"] == ["a", "a"]
