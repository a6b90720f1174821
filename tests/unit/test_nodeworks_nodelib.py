"""The worker's node implementations and `run_node`, called as the python executor does."""

from __future__ import annotations

import graphlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from broker.nodeworks.convert import convert_chart
from broker.nodeworks.wire import escape
from worker.nodelib import lib_math, lib_numpy, lib_types
from worker.nodelib.jsonable import jsonable
from worker.nodelib.run import run_node
from worker.pyrun import call

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "formats" / "nodeworks"


def math_node(name: str, **values: Any) -> Any:
    return lib_math.NODES[("math", name)](values)["result"]


@pytest.mark.parametrize(
    ("name", "values", "want"),
    [
        ("Add", {"input": [1, 2.5, 3]}, 6.5),
        ("Add", {"input": 4.0}, 4.0),  # an unconnected multiinput holds one number
        ("Multiply", {"input": [3125.0, 87]}, 271875.0),
        ("Subtract", {"minuend": [271875.0], "subtrahend": [15.0]}, 271860.0),
        ("Divide", {"dividend": 7, "divisor": 2}, 3.5),
        ("Power", {"base": 5.0, "exponent": 5.0}, 3125.0),
        ("Root", {"radicand": 225.0, "degree": 2.0}, 15.0),
        ("Root", {"radicand": -27.0, "degree": 3}, -3.0),
        ("Modulo", {"dividend": 7, "divisor": 4}, 3),
    ],
)
def test_math(name: str, values: dict[str, Any], want: float) -> None:
    assert math_node(name, **values) == pytest.approx(want)


def test_math_on_arrays() -> None:
    got = jsonable(math_node("Multiply", input=[[1.0, 2.0, 3.0], 2]))
    assert got == [2.0, 4.0, 6.0]
    assert jsonable(math_node("Subtract", minuend=[[5, 6]], subtrahend=1)) == [4.0, 5.0]


def test_math_errors() -> None:
    with pytest.raises(ValueError, match="terminal 'input' has no values"):
        math_node("Multiply", input=None)
    with pytest.raises(ValueError, match="terminal 'divisor' needs a number"):
        math_node("Divide", dividend=1, divisor="x")


def test_types() -> None:
    nodes = lib_types.NODES
    assert nodes[("types", "Float")]({"float": 3}) == {"float": 3.0}
    assert nodes[("types", "Integer")]({"int": 87}) == {"int": 87}
    assert nodes[("types", "String")]({"string": "stephan"}) == {"string": "stephan"}
    assert nodes[("types", "Boolean")]({}) == {"bool": False}


def test_numpy_nodes() -> None:
    rng = jsonable(lib_numpy.NODES[("numpy", "Range")](
        {"start": 0.0, "stop": 10.0, "step": 0.1, "type": "float"}))["range"]
    assert len(rng) == 100 and rng[0] == 0.0 and rng[-1] == pytest.approx(9.9)
    ints = jsonable(lib_numpy.NODES[("numpy", "Range")]({"stop": 3, "type": "int"}))
    assert ints == {"range": [0, 1, 2]}
    trig = lib_numpy.NODES[("numpy", "Trig")]
    assert jsonable(trig({"input": [0.0, math.pi / 2], "operation": "sin"}))["array"] == \
        pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="unknown Trig operation 'exp'"):
        trig({"input": [1.0], "operation": "exp"})
    lin = jsonable(lib_numpy.NODES[("numpy", "Linspace")]({"start": 0, "stop": 1, "num": 3}))
    assert lin == {"array": [0.0, 0.5, 1.0]}


def assert_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_run_node_plot_writes_a_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x = [0.0, 1.0, 2.0]
    out = run_node(path=["matplotlib", "Plot"], module="worker.nodelib.lib_matplotlib",
                   wires={"x": [["r", "range"]], "y": [["s", "array"], ["c", "array"]]},
                   multi=["x", "y"], file="plot.png",
                   inputs={"r": {"range": x}, "s": {"array": [0, 1, 0]},
                           "c": {"array": [1, 0, 1]}})
    assert out == {"file": "plot.png"}
    assert assert_png(tmp_path / "plot.png") == (600, 400)


def test_run_node_gathers_values_and_wires() -> None:
    out = run_node(path=["math", "Multiply"], module="worker.nodelib.lib_math", node="m",
                   wires={"input": [["a", "float"], ["job", None]]}, multi=["input"],
                   inputs={"a": {"float": 3.0}, "job": 7})
    assert out == {"result": 21.0}
    out = run_node(path=["math", "Root"], module="worker.nodelib.lib_math",
                   values={"degree": 3.0}, wires={"radicand": [["a", "float"]]},
                   inputs={"a": {"float": 8.0}})
    assert out == {"result": pytest.approx(2.0)}
    text = "{{ run }}"
    out = run_node(path=escape(["types", "String"]), module="worker.nodelib.lib_types",
                   values=escape({"string": text}), inputs={})
    assert out == {"string": text}


def test_run_node_errors() -> None:
    with pytest.raises(LookupError, match="defines no Nodeworks node \\['math', 'Nope'\\]"):
        run_node(path=["math", "Nope"], module="worker.nodelib.lib_math", inputs={})
    with pytest.raises(LookupError, match="needs output 'result' of task 'a'"):
        run_node(path=["math", "Add"], module="worker.nodelib.lib_math", node="add",
                 wires={"input": [["a", "result"]]}, multi=["input"], inputs={"a": {"x": 1}})
    with pytest.raises(LookupError, match="needs task 'b'"):
        run_node(path=["math", "Add"], module="worker.nodelib.lib_math",
                 wires={"input": [["b", "result"]]}, inputs={})


def test_pyrun_passes_inputs_to_run_node() -> None:
    kwargs = {"path": ["math", "Add"], "module": "worker.nodelib.lib_math",
              "wires": {"input": [["a", "x"]]}, "multi": ["input"]}
    assert call(run_node, kwargs, {"a": {"x": 2}}) == {"result": 2}


@pytest.mark.parametrize("name", ["distributed_nodeworks_node_ex.nc",
                                  "interactive_block_project_demo1.nc"])
def test_examples_compute_their_saved_outputs_in_process(name: str) -> None:
    """The quick check (the integration tests run the same on a real worker)."""
    path = EXAMPLES / name
    assert path.is_file(), f"the Nodeworks example charts are expected in {EXAMPLES}"
    raw = path.read_bytes()
    out = convert_chart(raw, name="c")
    nodes = out.workflow["nodes"]
    order = graphlib.TopologicalSorter({k: n.get("after", []) for k, n in nodes.items()})
    results: dict[str, Any] = {}
    for nid in order.static_order():
        parents = {p: results[p] for p in nodes[nid].get("after", [])}
        results[nid] = json.loads(json.dumps(call(run_node, nodes[nid]["kwargs"], parents)))
    checked = 0
    for u, entry in json.loads(raw).items():
        for t, term in entry.get("terminals", {}).items():
            if term["opts"]["out"] and term["value"] is not None:
                assert results[out.node_ids[u]][t] == pytest.approx(term["value"]), (u, t)
                checked += 1
    assert checked >= 3
