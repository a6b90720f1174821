"""The node-type registry: built-ins agree with the worker's modules; plugins load or fail."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from broker.nodeworks.library import BROKER, BUILTIN, JOB_SETTINGS, load_plugins, registry

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "nodeworks"


def test_every_builtin_python_node_is_implemented_on_the_worker() -> None:
    modules = {nt.module for nt in BUILTIN.values() if nt.module}
    assert modules == {f"worker.nodelib.lib_{m}" for m in ("math", "types", "numpy",
                                                           "matplotlib")}
    implemented = {}
    for module in modules:
        for path, impl in importlib.import_module(module).NODES.items():
            assert callable(impl)
            implemented[path] = module
    assert implemented == {p: nt.module for p, nt in BUILTIN.items() if nt.module}


def test_the_charts_node_types_are_built_in() -> None:
    for path in [("math", "Power"), ("math", "Multiply"), ("math", "Subtract"), ("math", "Root"),
                 ("math", "Add"), ("math", "Divide"), ("types", "Float"), ("types", "Integer"),
                 ("types", "String"), ("types", "Boolean"), ("numpy", "Range"),
                 ("numpy", "Trig"), ("matplotlib", "Plot")]:
        assert path in BUILTIN
    assert BUILTIN[("matplotlib", "Plot")].file_ext == ".png"


def test_job_nodes_have_settings_input_and_result() -> None:
    assert set(BROKER) == {("broker", n) for n in JOB_SETTINGS}
    for path, nt in BROKER.items():
        assert nt.executor == JOB_SETTINGS[path[1]][0] and nt.module is None
        names = [t.name for t in nt.terminals]
        assert names[-2:] == ["input", "result"]
        assert names[:-2] == list(JOB_SETTINGS[path[1]][1])
        assert nt.terminals[-2].multiinput and not nt.terminals[-1].is_input


def test_load_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    found = load_plugins(["nodeworks_test_plugin"])
    assert set(found) == {("my custom nodes", "my string node"), ("my custom nodes", "shout")}
    assert {nt.module for nt in found.values()} == {"nodeworks_test_plugin"}
    assert registry(found).keys() == BUILTIN.keys() | found.keys()
    assert load_plugins([]) == {}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("NODES = {('math', 'Power'): print}", r"node \['math', 'Power'\] is already defined "
                                               r"\(built-in\)"),
        ("NODES = [1]", "NODES must be a mapping"),
        ("X = 1", "NODES must be a mapping"),
        ("NODES = {'power': print}", "key 'power' is not"),
        ("NODES = {('a', 'b'): 5}", "is not callable"),
        ("import no_such_module_here", "cannot be imported"),
    ],
)
def test_bad_plugins_are_refused(
    source: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"nw_bad_plugin_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=message):
        load_plugins([name])


def test_two_plugins_cannot_define_the_same_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("nw_plugin_one", "nw_plugin_two"):
        (tmp_path / f"{name}.py").write_text("NODES = {('lib', 'node'): print}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"already defined \(nw_plugin_one\)"):
        load_plugins(["nw_plugin_one", "nw_plugin_two"])
