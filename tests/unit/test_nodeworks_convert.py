"""Nodeworks chart → native workflow: nodes, wires, values, ids, job nodes, errors."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.core.parse import to_workflow
from broker.core.validate import validate
from broker.errors import BadRequest, InvalidWorkflow
from broker.nodeworks.convert import convert_chart
from broker.nodeworks.ids import node_ids, sanitize
from broker.nodeworks.library import load_plugins
from broker.nodeworks.wire import RUN_NODE, unescape

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nodeworks"
EXAMPLES = ROOT.parent / "shared" / "formats" / "nodeworks"


def example(name: str) -> bytes:
    path = EXAMPLES / name
    assert path.is_file(), f"the Nodeworks example charts are expected in {EXAMPLES}"
    return path.read_bytes()


@pytest.fixture(scope="module")
def plugins() -> Any:
    sys.path.insert(0, str(FIXTURES))
    try:
        yield load_plugins(["nodeworks_test_plugin"])
    finally:
        sys.path.remove(str(FIXTURES))


def term(*, is_in: bool, value: Any = None, multi: bool = False, default: Any = None,
         widget: str | None = None) -> dict[str, Any]:
    return {"value": value, "opts": {"in": is_in, "out": not is_in, "multiinput": multi,
                                     "value": default, "widget": widget}}


def node(path: list[str], **terminals: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Node", "path": path, "terminals": terminals}


def conn(src: str, out: str, dst: str, inp: str) -> dict[str, Any]:
    return {"type": "Connection", "input": [src, out], "output": [dst, inp]}


def floats(*values: float) -> dict[str, Any]:
    """A chart of Float nodes `f0`, `f1`, … (value in an editable output), plus nothing else."""
    return {
        f"f{i}": node(["types", "Float"], float=term(is_in=False, value=v, widget="doublespinbox"))
        for i, v in enumerate(values)
    }


def kwargs(doc: dict[str, Any], nid: str) -> dict[str, Any]:
    return unescape(doc["nodes"][nid]["kwargs"])  # type: ignore[no-any-return]


def convert(chart: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return convert_chart(json.dumps(chart).encode(), name="t", **kw).workflow


def test_distributed_example_becomes_python_nodes_with_wires() -> None:
    raw = example("distributed_nodeworks_node_ex.nc")
    out = convert_chart(raw, name="node-ex")
    doc = out.workflow
    assert out.original == raw
    assert set(doc["nodes"]) == {"power", "multiply", "integer", "subtract", "root"}
    assert out.node_ids == {u: u for u in doc["nodes"]}
    validate(to_workflow(doc))
    for n in doc["nodes"].values():
        assert n["executor"] == "python" and n["callable"] == RUN_NODE
    power = kwargs(doc, "power")
    assert power["path"] == ["math", "Power"] and power["module"] == "worker.nodelib.lib_math"
    assert power["values"] == {"base": 5.0, "exponent": 5.0}
    assert kwargs(doc, "integer")["values"] == {"int": 87}  # an editable output's value
    sub = kwargs(doc, "subtract")
    # connected inputs take their wires; their saved (stale) values are not used
    assert sub["values"] == {}
    assert sub["wires"] == {"minuend": [["multiply", "result"]],
                            "subtrahend": [["root", "result"]]}
    assert doc["nodes"]["subtract"]["after"] == ["multiply", "root"]
    assert "after" not in doc["nodes"]["power"]


def test_multiinput_is_a_list_in_connection_order() -> None:
    raw = example("interactive_block_project_demo1.nc")
    doc = convert_chart(raw, name="demo1").workflow
    mul = kwargs(doc, "multiply")
    assert mul["wires"] == {"input": [["float", "float"], ["float.0", "float"]]}
    assert mul["multi"] == ["input"]
    assert doc["nodes"]["multiply"]["after"] == ["float", "float.0"]
    # the same chart with its connections saved the other way round
    chart = json.loads(raw)
    reordered = {k: v for k, v in chart.items() if k != "connection"}
    reordered["connection"] = chart["connection"]
    doc = convert_chart(json.dumps(reordered).encode(), name="demo1").workflow
    assert kwargs(doc, "multiply")["wires"]["input"] == [["float.0", "float"], ["float", "float"]]


def test_single_input_is_not_a_list() -> None:
    chart = floats(4.0)
    chart["root"] = node(["math", "Root"], radicand=term(is_in=True, value=9.0),
                         degree=term(is_in=True, value=2.0), result=term(is_in=False))
    chart["c"] = conn("f0", "float", "root", "radicand")
    k = kwargs(convert(chart), "root")
    assert k["wires"] == {"radicand": [["f0", "float"]]} and "multi" not in k
    assert k["values"] == {"degree": 2.0}


def test_unconnected_input_without_a_value_takes_its_default() -> None:
    chart = {"r": node(["numpy", "Range"], start=term(is_in=True, value=None, default=2),
                       stop=term(is_in=True, value=5.0), range=term(is_in=False, value=[9]))}
    assert kwargs(convert(chart), "r")["values"] == {"start": 2, "stop": 5.0}


def test_plot_node_declares_its_png_output() -> None:
    doc = convert_chart(example("interactive_block_project_demo.nc"), name="demo").workflow
    plot = doc["nodes"]["plot"]
    assert plot["outputs"] == ["plot.png"]
    k = kwargs(doc, "plot")
    assert k["file"] == "plot.png"
    assert k["wires"]["y"] == [["trig", "array"], ["trig.0", "array"]]
    assert sorted(k["multi"]) == ["x", "y"]
    assert kwargs(doc, "trig.0")["values"] == {"operation": "cos"}


def test_uniquenames_map_to_safe_unique_ids() -> None:
    assert sanitize("my string node") == "my_string_node"
    assert sanitize("-x") == "_-x" and sanitize("..") == "_.." and sanitize("?!") == "node"
    ids = node_ids(["a b", "a_b", "float.0", "a  b", "é" * 200])
    assert ids["a_b"] == "a_b" and ids["float.0"] == "float.0"
    assert ids["a b"] == "a_b-2" and ids["a  b"] == "a_b-3"
    assert len(set(ids.values())) == 5 and all(len(i) <= 128 for i in ids.values())
    chart = floats(1.0)
    chart["my node"] = chart.pop("f0")
    chart["my_node"] = node(["math", "Add"], input=term(is_in=True, multi=True),
                            result=term(is_in=False))
    chart["c"] = conn("my node", "float", "my_node", "input")
    out = convert_chart(json.dumps(chart).encode(), name="t")
    assert out.node_ids == {"my node": "my_node-2", "my_node": "my_node"}
    assert out.workflow["nodes"]["my_node"]["after"] == ["my_node-2"]
    assert kwargs(out.workflow, "my_node-2")["node"] == "my node"


def test_unknown_paths_are_all_listed() -> None:
    with pytest.raises(InvalidWorkflow) as e:
        convert_chart((FIXTURES / "unknown_nodes.nc").read_bytes(), name="t")
    assert "['secret lib', 'Mystery']" in e.value.message
    assert "['math', 'Fancy']" in e.value.message
    assert e.value.details["unknown"] == [["secret lib", "Mystery"], ["math", "Fancy"]]
    assert [x["chart_node"] for x in e.value.details["errors"]] == ["mystery", "mystery.0",
                                                                     "fancy"]


def test_custom_node_needs_its_plugin(plugins: Any) -> None:
    raw = example("interactive_block_project_demo2.nc")
    with pytest.raises(InvalidWorkflow, match=r"\['my custom nodes', 'my string node'\]"):
        convert_chart(raw, name="demo2")
    out = convert_chart(raw, name="demo2", plugins=plugins)
    assert out.node_ids["my string node"] == "my_string_node"
    k = kwargs(out.workflow, "my_string_node")
    assert k["module"] == "nodeworks_test_plugin" and k["node"] == "my string node"
    assert k["wires"] == {"input": [["string", "string"]]}


def test_cycle_is_rejected_naming_the_chart_nodes() -> None:
    with pytest.raises(InvalidWorkflow) as e:
        convert_chart((FIXTURES / "cycle.nc").read_bytes(), name="t")
    assert e.value.message == "the chart has a cycle: 'add one' → 'double it' → 'add one'"
    assert e.value.details["cycle"] == ["add one", "double it", "add one"]
    assert e.value.details["node_ids"] == ["add_one", "double_it", "add_one"]


def test_job_nodes_become_native_executors(plugins: Any) -> None:
    out = convert_chart((FIXTURES / "jobs_and_plugin.nc").read_bytes(), name="jobs",
                        plugins=plugins)
    nodes = out.workflow["nodes"]
    # the command comes from the String node connected to it; the connection is also an edge
    assert nodes["bash"]["executor"] == "shell"
    assert nodes["bash"]["command"] == 'echo 7 > "$DAGB_RESULT"'
    assert nodes["bash"]["timeout"] == 60.0 and "retries" not in nodes["bash"]
    assert nodes["bash"]["after"] == ["command_text"]
    assert nodes["python_job"]["executor"] == "python"
    assert nodes["python_job"]["script"].startswith("import json")
    assert "kwargs" not in nodes["python_job"] and "callable" not in nodes["python_job"]
    # a job node's output passes its whole result (no terminal)
    assert kwargs(out.workflow, "multiply")["wires"]["input"] == [["bash", None],
                                                                   ["float", "float"]]


def test_every_job_type_converts_and_validates() -> None:
    settings = {
        "bash": {"command": "true"},
        "python": {"callable": "statistics:fmean", "kwargs": {"data": [1, 2]}, "script": "x"},
        "slurm": {"command": "srun x", "cores": 4, "memory": "2G", "walltime": "00:10:00"},
        "ssh": {"host": "hpc1", "command": "hostname"},
        "aws_batch": {"image": "busybox", "command": "true"},
        "event": {"wait_for": "data.ready"},
        "noop": {},
    }
    chart = {name: node(["broker", name], **{k: term(is_in=True, value=v) for k, v in s.items()},
                        input=term(is_in=True, multi=True), result=term(is_in=False))
             for name, s in settings.items()}
    nodes = convert(chart)["nodes"]
    assert {k: n["executor"] for k, n in nodes.items()} == {
        "bash": "shell", "python": "python", "slurm": "slurm", "ssh": "ssh",
        "aws_batch": "aws_batch", "event": "event", "noop": "noop"}
    assert nodes["python"]["callable"] == "statistics:fmean" and "script" not in nodes["python"]
    assert nodes["python"]["kwargs"] == {"data": [1, 2]}
    assert nodes["slurm"]["resources"] == {"cores": 4, "memory": "2G", "walltime": "00:10:00"}
    assert nodes["ssh"]["host"] == "hpc1" and nodes["event"]["wait_for"] == "data.ready"


def test_job_setting_must_be_typed_in_or_a_types_node() -> None:
    chart = floats(2.0)
    chart["add"] = node(["math", "Add"], input=term(is_in=True, multi=True),
                        result=term(is_in=False))
    chart["job"] = node(["broker", "bash"], command=term(is_in=True, value="true"),
                        timeout=term(is_in=True))
    chart["c0"] = conn("f0", "float", "add", "input")
    chart["c1"] = conn("add", "result", "job", "timeout")
    chart["job"]["terminals"]["timeout"]["opts"]["multiinput"] = True
    with pytest.raises(InvalidWorkflow, match="chart node 'job': terminal 'timeout' is connected"):
        convert(chart)
    chart["c2"] = conn("f0", "float", "job", "timeout")
    with pytest.raises(InvalidWorkflow, match="'timeout' has 2 connections"):
        convert(chart)
    del chart["c1"]
    assert convert(chart)["nodes"]["job"]["timeout"] == 2.0
    bad = copy.deepcopy(chart)
    bad["job"]["terminals"]["command"]["value"] = 5
    with pytest.raises(InvalidWorkflow, match="terminal 'command' needs a str, got 5"):
        convert(bad)


def test_native_errors_name_the_chart_node() -> None:
    chart = {"my job": node(["broker", "bash"], command=term(is_in=True, value="echo {{ x }}"))}
    with pytest.raises(InvalidWorkflow) as e:
        convert(chart)
    assert e.value.message.startswith("chart node 'my job': node 'my_job', field 'command'")
    assert e.value.details["errors"][0]["chart_node"] == "my job"


def test_placeholder_like_values_are_data() -> None:
    chart = {"s": node(["types", "String"],
                       string=term(is_in=False, value="{{ run }} {{nope}}", widget="lineedit"))}
    doc = convert(chart)
    assert "{{" not in json.dumps(doc["nodes"]["s"]["kwargs"])
    assert kwargs(doc, "s")["values"] == {"string": "{{ run }} {{nope}}"}


@pytest.mark.parametrize(
    ("chart", "message"),
    [
        ([1, 2], "a chart must be a JSON object"),
        ({}, "the chart has no nodes"),
        ({"a": {"type": "Node"}}, "node 'a': Object missing required field `path`"),
        ({"a": 5}, "entry 'a' is not an object"),
        ({**floats(1.0), "c": conn("f0", "float", "zz", "x")}, "unknown target node 'zz'"),
        ({**floats(1.0), "c": conn("f0", "nope", "f0", "x")}, "node 'f0' has no terminal 'nope'"),
        ({**floats(1.0, 2.0), "c": conn("f0", "float", "f1", "float")},
         "terminal 'float' of node 'f1' is not an input"),
    ],
)
def test_malformed_charts_are_rejected(chart: Any, message: str) -> None:
    with pytest.raises(InvalidWorkflow, match="invalid Nodeworks chart") as e:
        convert_chart(json.dumps(chart).encode(), name="t")
    assert message in e.value.message


def test_two_connections_on_a_single_input_are_rejected() -> None:
    chart = floats(1.0, 2.0)
    chart["t"] = node(["numpy", "Trig"], input=term(is_in=True), array=term(is_in=False))
    chart["c"] = conn("f0", "float", "t", "input")
    chart["c.0"] = conn("f1", "float", "t", "input")
    with pytest.raises(InvalidWorkflow, match="'input' of node 't' is not multiinput"):
        convert(chart)


def test_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        convert_chart(b"{nope", name="t")
    with pytest.raises(InvalidWorkflow, match="field 'name'"):
        convert_chart(json.dumps(floats(1.0)).encode(), name="no spaces allowed")
