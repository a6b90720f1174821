"""broker.core.parse: bytes → Workflow, with errors that name the node, the field and the path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core.parse import load_document, parse_workflow, to_workflow
from broker.errors import BadRequest, BrokerError, InvalidWorkflow
from broker.spec import Node, Resources, Workflow


def doc(nodes: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "w",
        "nodes": nodes if nodes is not None else {"a": {"command": "true"}},
    }
    out.update(top)
    return out


def parse(d: Any) -> Workflow:
    return parse_workflow(json.dumps(d).encode())


def invalid(d: Any) -> InvalidWorkflow:
    with pytest.raises(InvalidWorkflow) as ei:
        parse(d)
    return ei.value


# -- valid documents ------------------------------------------------------------------------


def test_minimal_workflow_has_defaults() -> None:
    wf = parse(doc())
    assert wf.name == "w"
    assert wf.description == ""
    assert wf.priority == 0
    assert wf.params == {}
    assert wf.defaults is None
    node = wf.nodes["a"]
    assert node.executor is None
    assert node.after == []
    assert node.trigger == "all_success"
    assert node.matrix is None


def test_full_workflow_round_trips_every_field() -> None:
    d = {
        "name": "full-1.0",
        "description": "everything",
        "priority": 10,
        "params": {"n": 3, "label": "x"},
        "defaults": {
            "executor": "shell",
            "resources": {"cores": 2, "memory": "1G"},
            "priority": 1,
            "retries": 2,
            "retry_backoff": 0.5,
            "timeout": 60,
            "env": {"A": "1"},
            "workdir": "/tmp",
        },
        "nodes": {
            "prep": {"command": "echo {{ n }}", "description": "first"},
            "py": {
                "executor": "python",
                "callable": "pkg.mod:fn",
                "kwargs": {"x": "{{ n }}"},
                "after": ["prep"],
                "trigger": "all_done",
                "resources": {
                    "cores": 0.5,
                    "memory": 2048,
                    "gpus": 1,
                    "disk": "10G",
                    "walltime": "01:00:00",
                    "labels": {"site": "a"},
                    "class": "gpu-a100",
                },
                "priority": -5,
                "retries": 0,
                "retry_backoff": 0,
                "timeout": 1.5,
                "env": {"B": "2"},
                "workdir": "w",
            },
            "sweep": {"command": ["echo", "{{ v }}"], "matrix": {"v": [1, 2]}, "after": ["py"]},
            "noop_1": {"executor": "noop", "after": ["sweep"]},
        },
    }
    wf = parse(d)
    assert wf.priority == 10
    assert wf.defaults is not None and wf.defaults.resources == Resources(cores=2, memory="1G")
    py = wf.nodes["py"]
    assert py.callable == "pkg.mod:fn"
    assert py.trigger == "all_done"
    assert py.resources is not None
    assert py.resources.class_ == "gpu-a100"
    assert py.resources.labels == {"site": "a"}
    assert py.resources.memory == 2048
    assert wf.nodes["sweep"].command == ["echo", "{{ v }}"]
    assert wf.nodes["sweep"].matrix == {"v": [1, 2]}
    assert list(wf.nodes) == ["prep", "py", "sweep", "noop_1"]


def test_accepts_str_and_bytes() -> None:
    text = json.dumps(doc())
    assert parse_workflow(text) == parse_workflow(text.encode())


def test_node_ids_with_dots_dashes_and_underscores() -> None:
    wf = parse(doc({"step.1": {"command": "x"}, "_b-2": {"command": "y", "after": ["step.1"]}}))
    assert set(wf.nodes) == {"step.1", "_b-2"}


def test_resources_class_uses_the_json_name_class() -> None:
    wf = parse(doc({"a": {"command": "x", "resources": {"class": "big"}}}))
    assert wf.nodes["a"].resources == Resources(class_="big")


# -- YAML -----------------------------------------------------------------------------------


YAML = b"""
name: y
params:
  n: 4
nodes:
  a:
    command: echo {{ n }}
  b:
    command: [echo, done]
    after: [a]
    resources: {memory: 4G, walltime: "00:10:00"}
"""


def test_yaml_parses_to_the_same_types() -> None:
    wf = parse_workflow(YAML, "yaml")
    assert wf.params == {"n": 4}
    assert wf.nodes["b"].after == ["a"]
    assert wf.nodes["b"].command == ["echo", "done"]
    assert wf.nodes["b"].resources == Resources(memory="4G", walltime="00:10:00")


def test_yaml_and_json_of_the_same_document_agree() -> None:
    d = doc({"a": {"command": "x", "retries": 2}, "b": {"executor": "noop", "after": ["a"]}})
    import yaml

    assert parse_workflow(yaml.safe_dump(d), "yaml") == parse(d)


def test_invalid_yaml_is_bad_request() -> None:
    with pytest.raises(BadRequest) as ei:
        parse_workflow(b"name: [", "yaml")
    assert ei.value.message.startswith("invalid YAML")
    assert ei.value.status == 400


def test_yaml_type_errors_are_invalid_workflow() -> None:
    with pytest.raises(InvalidWorkflow):
        parse_workflow(b"name: y\nnodes:\n  a:\n    retries: lots\n", "yaml")


def test_yaml_duplicate_node_id_is_rejected() -> None:
    """A YAML mapping with a repeated key must not silently keep the last value (as JSON)."""
    raw = b"name: y\nnodes:\n  a:\n    command: echo 1\n  a:\n    command: echo 2\n"
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw, "yaml")
    assert "'a'" in ei.value.message


# -- syntax errors --------------------------------------------------------------------------


def test_invalid_json_reports_line_and_column() -> None:
    raw = b'{\n  "name": "w",\n  "nodes": {\n    "a": {"command": "x",}\n  }\n}'
    with pytest.raises(BadRequest) as ei:
        parse_workflow(raw)
    e = ei.value
    assert e.details == {"line": 4, "column": 26}
    assert "line 4 column 26" in e.message
    assert e.to_dict()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"nul", b"[1,"])
def test_truncated_json_is_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as ei:
        parse_workflow(raw)
    assert {"line", "column"} <= set(ei.value.details)


@pytest.mark.parametrize("raw", [b"\xff\xfe{", b'{"name": "\xc3\x28"}'])
def test_non_utf8_is_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as ei:
        parse_workflow(raw)
    assert "UTF-8" in ei.value.message


@pytest.mark.parametrize("d", [[], "w", 3, None, [{"name": "w"}]])
def test_top_level_must_be_an_object(d: Any) -> None:
    e = invalid(d)
    assert e.details["path"] == "$"


# -- duplicate keys -------------------------------------------------------------------------


def test_duplicate_node_id() -> None:
    raw = b'{"name": "w", "nodes": {"a": {"command": "1"}, "a": {"command": "2"}}}'
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    e = ei.value
    assert e.message == "duplicate node id 'a' at `$.nodes`"
    assert e.details["path"] == "$.nodes"
    assert e.details["key"] == "a"
    assert e.details["errors"] == [
        {"path": "$.nodes", "key": "a", "node": "a", "message": "duplicate node id"}
    ]


def test_duplicate_node_id_names_the_node_in_details() -> None:
    raw = b'{"name": "w", "nodes": {"a": {"command": "1"}, "a": {"command": "2"}}}'
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    assert ei.value.details.get("node") == "a"


def test_duplicate_top_level_key() -> None:
    raw = b'{"name": "w", "name": "v", "nodes": {"a": {"command": "1"}}}'
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    assert ei.value.message == "duplicate key 'name' at `$`"
    assert ei.value.details["key"] == "name"


def test_duplicate_key_inside_a_node() -> None:
    raw = b'{"name": "w", "nodes": {"a": {"command": "1", "command": "2"}}}'
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    e = ei.value
    assert "duplicate key 'command'" in e.message
    assert e.details["path"] == "$.nodes.a"
    assert e.details["key"] == "command"


def test_duplicate_key_inside_a_node_names_node_and_field() -> None:
    raw = b'{"name": "w", "nodes": {"a": {"command": "1", "command": "2"}}}'
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    assert ei.value.details.get("node") == "a"
    assert ei.value.details.get("field") == "command"


def test_duplicate_key_deep_inside_lists_and_maps() -> None:
    raw = (
        b'{"name": "w", "nodes": {"a": {"executor": "python", "callable": "m:f",'
        b' "kwargs": {"xs": [{"k": 1}, {"k": 1, "k": 2}]}}}}'
    )
    with pytest.raises(InvalidWorkflow) as ei:
        parse_workflow(raw)
    assert ei.value.details["path"] == "$.nodes.a.kwargs.xs[1]"
    assert ei.value.details["key"] == "k"


def test_same_key_in_different_objects_is_fine() -> None:
    wf = parse(
        doc({"a": {"command": "x", "env": {"K": "1"}}, "b": {"command": "y", "env": {"K": "2"}}})
    )
    assert wf.nodes["b"].env == {"K": "2"}


def test_load_document_returns_plain_values() -> None:
    assert load_document(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


# -- unknown fields and type errors ---------------------------------------------------------


def test_unknown_top_level_field_names_the_field() -> None:
    e = invalid(doc(colour="blue"))
    assert "colour" in e.message
    assert e.details["path"] == "$.colour"  # the path of the offending field itself
    assert e.details.get("field") == "colour"
    assert "node" not in e.details


def test_unknown_field_inside_a_node_names_node_and_field() -> None:
    e = invalid(doc({"ok": {"command": "x"}, "sim": {"command": "x", "retry": 3}}))
    assert "sim" in e.message and "retry" in e.message
    assert e.details.get("node") == "sim"
    assert e.details.get("field") == "retry"
    assert e.details["path"].startswith("$.nodes.sim")


def test_unknown_field_inside_resources_names_node_and_field() -> None:
    e = invalid(doc({"a": {"command": "x", "resources": {"cpus": 4}}}))
    assert e.details.get("node") == "a"
    assert e.details.get("field") == "resources.cpus"


def test_wrong_type_in_a_node_names_node_field_and_path() -> None:
    e = invalid(doc({"a": {"command": "x"}, "b": {"command": "x", "retries": "3"}}))
    assert e.details.get("node") == "b"
    assert e.details.get("field") == "retries"
    assert e.details["path"] == "$.nodes.b.retries"
    assert e.message.startswith("node 'b', field 'retries': ")
    assert len(e.details["errors"]) == 1
    item = e.details["errors"][0]
    assert item["path"] == "$.nodes.b.retries"
    assert item["message"] == "Expected `int | null`, got `str`"


def test_wrong_type_nested_in_resources() -> None:
    e = invalid(doc({"a": {"command": "x", "resources": {"gpus": "two"}}}))
    assert e.details.get("node") == "a"
    assert e.details.get("field") == "resources.gpus"
    assert e.details["path"] == "$.nodes.a.resources.gpus"


def test_wrong_type_in_after_list_names_the_index() -> None:
    e = invalid(doc({"a": {"command": "x"}, "b": {"command": "x", "after": ["a", 7]}}))
    assert e.details.get("node") == "b"
    assert e.details["path"] == "$.nodes.b.after[1]"


def test_wrong_type_with_a_dotted_node_id() -> None:
    e = invalid(doc({"step.1": {"command": "x", "timeout": "soon"}}))
    assert e.details.get("node") == "step.1"
    assert e.details.get("field") == "timeout"


def test_wrong_type_at_top_level_names_the_field() -> None:
    e = invalid(doc(priority="high"))
    assert e.details["path"] == "$.priority"
    assert e.details["field"] == "priority"
    assert "node" not in e.details
    assert [(i["path"], i["message"]) for i in e.details["errors"]] == [
        ("$.priority", "Expected `int`, got `str`")
    ]
    assert e.message == "workflow, field 'priority': Expected `int`, got `str`"


def test_wrong_type_in_defaults_names_the_field() -> None:
    e = invalid(doc(defaults={"retries": "x"}))
    assert e.details["path"] == "$.defaults.retries"
    assert e.details["field"] == "defaults.retries"
    assert "node" not in e.details


def test_missing_required_field() -> None:
    e = invalid({"nodes": {"a": {"command": "x"}}})
    assert "name" in e.message
    assert e.details.get("field") == "name"


def test_invalid_node_id_is_reported_readably() -> None:
    e = invalid(doc({"bad id!": {"command": "x"}}))
    assert "`" not in e.details["path"]
    assert e.details["path"].startswith("$.nodes")


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"command": "x", "executor": "docker"}, "executor"),
        ({"command": "x", "trigger": "one_success"}, "trigger"),
        ({"command": "x", "priority": 1001}, "priority"),
        ({"command": "x", "priority": -1001}, "priority"),
        ({"command": "x", "retries": -1}, "retries"),
        ({"command": "x", "retries": 101}, "retries"),
        ({"command": "x", "retry_backoff": -0.1}, "retry_backoff"),
        ({"command": "x", "timeout": 0}, "timeout"),
        ({"command": "x", "env": {"A": 1}}, "env"),
        ({"command": 5}, "command"),
        ({"command": "x", "after": "a"}, "after"),
        ({"command": "x", "resources": {"cores": 0}}, "resources.cores"),
        ({"command": "x", "resources": {"gpus": -1}}, "resources.gpus"),
        ({"command": "x", "resources": {"memory": -5}}, "resources.memory"),
        ({"command": "x", "resources": {"memory": 1.5}}, "resources.memory"),
        ({"command": "x", "resources": {"walltime": -1}}, "resources.walltime"),
        ({"command": "x", "resources": {"class": "GPU"}}, "resources.class"),
        ({"executor": "python", "callable": "no_colon"}, "callable"),
        ({"command": "x", "matrix": {"v": 3}}, "matrix"),
        ({"command": "x", "matrix": {"1v": [1]}}, "matrix"),
    ],
)
def test_type_and_range_errors_name_the_node(node: dict[str, Any], field: str) -> None:
    e = invalid(doc({"n1": node}))
    assert e.details.get("node") == "n1", e.to_dict()
    assert e.details.get("field", "").startswith(field), e.to_dict()
    assert e.status == 422


@pytest.mark.parametrize(
    "top",
    [
        {"name": "has space"},
        {"name": ""},
        {"name": "-leading"},
        {"priority": 2000},
        {"params": {"1bad": 1}},
        {"nodes": []},
        {"defaults": {"trigger": "all_done"}},
        {"defaults": {"command": "x"}},
    ],
)
def test_top_level_errors(top: dict[str, Any]) -> None:
    e = invalid({**doc(), **top})
    assert e.details["errors"], e.to_dict()
    assert "node" not in e.details


def test_error_dict_shape() -> None:
    e = invalid(doc(priority="high"))
    out = e.to_dict()
    assert set(out) == {"error"}
    assert set(out["error"]) == {"code", "message", "details"}
    assert out["error"]["code"] == "invalid_workflow"
    assert isinstance(e, BrokerError)
    json.dumps(out)  # serialisable


def test_to_workflow_accepts_a_parsed_document() -> None:
    wf = to_workflow(doc())
    assert isinstance(wf.nodes["a"], Node)


def test_every_bad_node_is_reported() -> None:
    e = invalid(
        doc({"a": {"command": "x", "retries": "3"}, "ok": {"command": "x"}, "b": {"command": 1}})
    )
    assert [(i.get("node"), i.get("field")) for i in e.details["errors"]] == [
        ("a", "retries"),
        ("b", "command"),
    ]
    assert e.message.endswith("(and 1 more)")
