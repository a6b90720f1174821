"""Native workflow → Nodeworks chart: editor state kept, changes applied, defaults for new."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.nodeworks.convert import convert_chart
from broker.nodeworks.export import export_chart
from broker.nodeworks.library import load_plugins
from broker.nodeworks.wire import escape, unescape

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nodeworks"
EXAMPLES = ROOT.parent / "shared" / "formats" / "nodeworks"
CHARTS = [
    "distributed_nodeworks_node_ex.nc",
    "interactive_block_project_demo.nc",
    "interactive_block_project_demo1.nc",
    "interactive_block_project_demo2.nc",
    "fixtures/jobs_and_plugin.nc",
]


def read_chart(name: str) -> bytes:
    if name.startswith("fixtures/"):
        return (FIXTURES / name.removeprefix("fixtures/")).read_bytes()
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


def node_ex() -> tuple[bytes, dict[str, Any]]:
    raw = read_chart("distributed_nodeworks_node_ex.nc")
    return raw, convert_chart(raw, name="node-ex").workflow


def set_kwargs(doc: dict[str, Any], nid: str, **changes: Any) -> None:
    k = unescape(doc["nodes"][nid]["kwargs"])
    k.update(changes)
    doc["nodes"][nid]["kwargs"] = escape(k)


@pytest.mark.parametrize("name", CHARTS)
def test_unchanged_conversion_exports_the_original_bytes(name: str, plugins: Any) -> None:
    raw = read_chart(name)
    doc = convert_chart(raw, name="c", plugins=plugins).workflow
    assert export_chart(doc, raw) == raw
    # through JSON storage, as the revision store keeps it
    assert export_chart(json.loads(json.dumps(doc)), raw) == raw


@pytest.mark.parametrize("name", CHARTS)
def test_export_without_original_converts_back_to_the_same_workflow(
    name: str, plugins: Any
) -> None:
    doc = convert_chart(read_chart(name), name="c", plugins=plugins).workflow
    chart = export_chart(doc, None)
    assert convert_chart(chart, name="c", plugins=plugins).workflow == doc
    for entry in json.loads(chart).values():
        if entry["type"] == "Node":
            assert len(entry["pos"]) == 2 and entry["terminals"]
            for t in entry["terminals"].values():
                assert len(t["opts"]) == 21


def test_a_changed_value_changes_only_that_terminal() -> None:
    raw, doc = node_ex()
    set_kwargs(doc, "power", values={"base": 2.0, "exponent": 5.0})
    out = json.loads(export_chart(doc, raw))
    want = json.loads(raw)
    want["power"]["terminals"]["base"]["value"] = 2.0
    assert out == want
    assert list(out) == list(want)


def test_a_new_native_node_gets_a_job_node_and_a_connection() -> None:
    raw, doc = node_ex()
    doc["nodes"]["report"] = {"command": "echo done", "after": ["subtract"], "timeout": 30}
    out = json.loads(export_chart(doc, raw))
    old = json.loads(raw)
    assert {k: v for k, v in out.items() if k in old} == old  # all kept, unchanged
    report = out["report"]
    assert report["path"] == ["broker", "bash"] and report["type"] == "Node"
    assert report["terminals"]["command"]["value"] == "echo done"
    assert report["terminals"]["timeout"]["value"] == 30
    assert report["terminals"]["input"]["opts"]["multiinput"] is True
    assert report["pos"][1] > max(e["pos"][1] for e in old.values() if e["type"] == "Node")
    assert report["layer"] > max(e["layer"] for e in old.values() if e["type"] == "Node")
    new_conn = [k for k in out if k not in old and k != "report"]
    assert new_conn == ["connection.3"]
    assert out["connection.3"]["input"] == ["subtract", "result"]
    assert out["connection.3"]["output"] == ["report", "input"]
    back = convert_chart(json.dumps(out).encode(), name="node-ex").workflow["nodes"]["report"]
    assert back["executor"] == "shell" and back["command"] == "echo done"
    assert back["after"] == ["subtract"] and back["timeout"] == 30


def test_a_removed_node_takes_its_connections_along() -> None:
    raw, doc = node_ex()
    del doc["nodes"]["root"]
    doc["nodes"]["subtract"]["after"] = ["multiply"]
    k = unescape(doc["nodes"]["subtract"]["kwargs"])
    del k["wires"]["subtrahend"]
    k["multi"] = ["minuend"]
    k["values"] = {"subtrahend": 10.0}
    doc["nodes"]["subtract"]["kwargs"] = escape(k)
    out = json.loads(export_chart(doc, raw))
    assert "root" not in out and "connection.2" not in out
    assert out["subtract"]["terminals"]["subtrahend"]["value"] == 10.0
    again = convert_chart(json.dumps(out).encode(), name="node-ex").workflow
    assert again["nodes"] == doc["nodes"]


def test_reordered_multiinput_keeps_the_new_order() -> None:
    raw = read_chart("interactive_block_project_demo1.nc")
    doc = convert_chart(raw, name="demo1").workflow
    set_kwargs(doc, "multiply", wires={"input": [["float.0", "float"], ["float", "float"]]})
    doc["nodes"]["multiply"]["after"] = ["float.0", "float"]
    out = export_chart(doc, raw)
    chart = json.loads(out)
    assert {k for k in chart} == set(json.loads(raw))  # same entries, names kept
    assert convert_chart(out, name="demo1").workflow == doc


def test_a_native_workflow_exports_as_job_nodes() -> None:
    doc = {
        "name": "native",
        "defaults": {"executor": "shell", "timeout": 60},
        "nodes": {
            "prep": {"command": ["python3", "prep.py", "--n", "3"]},
            "fit": {"executor": "python", "callable": "statistics:fmean",
                    "kwargs": {"data": [1, 2]}, "after": ["prep"]},
            "remote": {"executor": "ssh", "host": "hpc", "command": "hostname",
                       "after": ["prep"]},
            "join": {"executor": "noop", "after": ["fit", "remote"]},
        },
    }
    chart = json.loads(export_chart(doc, None))
    nodes = {k: v for k, v in chart.items() if v["type"] == "Node"}
    assert {k: v["path"][1] for k, v in nodes.items()} == {
        "prep": "bash", "fit": "python", "remote": "ssh", "join": "noop"}
    assert nodes["prep"]["terminals"]["command"]["value"] == "python3 prep.py --n 3"
    assert nodes["fit"]["terminals"]["timeout"]["value"] == 60  # from defaults
    back = convert_chart(json.dumps(chart).encode(), name="native").workflow["nodes"]
    assert back["fit"]["callable"] == "statistics:fmean"
    assert back["fit"]["kwargs"] == {"data": [1, 2]}
    assert back["remote"]["host"] == "hpc" and back["join"]["executor"] == "noop"
    assert back["join"]["after"] == ["fit", "remote"]
    assert len({v["pos"][0] for v in nodes.values()}) == 3  # one column per depth


def test_unknown_entry_types_are_kept() -> None:
    raw, doc = node_ex()
    chart = json.loads(raw)
    chart["note"] = {"type": "Text", "text": "hello"}
    raw = json.dumps(chart, indent=2).encode()
    doc2 = convert_chart(raw, name="node-ex").workflow
    assert doc2 == doc
    assert export_chart(copy.deepcopy(doc2), raw) == raw


def test_malformed_converted_nodes_still_export() -> None:
    doc = {"name": "odd", "nodes": {
        "a": {"executor": "python", "callable": "worker.nodelib.run:run_node",
              "kwargs": {"path": "math/Add"}},
        "b": {"executor": "python", "callable": "worker.nodelib.run:run_node", "after": ["a"],
              "kwargs": {"path": ["math", "Add"], "values": 3, "multi": 5,
                         "wires": {"input": [["a"], "x", ["a", 7]]}}},
    }}
    chart = json.loads(export_chart(doc, None))
    assert chart["a"]["path"] == ["broker", "python"]
    assert chart["a"]["terminals"]["callable"]["value"] == "worker.nodelib.run:run_node"
    assert chart["b"]["path"] == ["math", "Add"]
    assert [e["input"] for e in chart.values() if e["type"] == "Connection"] == [["a", "result"]]
