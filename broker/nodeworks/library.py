"""The registry of Nodeworks node types: `[library, name]` → how the node runs.

Built-in libraries (implemented in `worker.nodelib`, run by the python executor):

    math        Add, Subtract, Multiply, Divide, Power, Root, Modulo
    types       Float, Integer, String, Boolean
    numpy       Range, Linspace, Trig
    matplotlib  Plot (writes `<node id>.png` into the task's working directory)

and the `broker` library of job nodes, which become native nodes of their own executor
(see `broker.nodeworks.jobs`): bash, python, slurm, ssh, aws_batch, event, noop.

A plugin is an importable module with a mapping `NODES = {("my lib", "my node"): callable}`;
`load_plugins` imports it on the broker (to learn its paths) and the worker imports it again
by name to run a node, so it must be on the worker's PYTHONPATH too. Keep heavy imports
inside the callables.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

NodePath = tuple[str, str]

FLOAT = "<class 'float'>"
INT = "<class 'int'>"
STR = "<class 'str'>"
BOOL = "<class 'bool'>"
DICT = "<class 'dict'>"
ARRAY = "<class 'numpy.ndarray'>"
ANY = "None"


class TerminalSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One terminal of a node type, with what an editor needs to draw a new node."""

    name: str
    is_input: bool
    dtype: str = ANY
    widget: str | None = None
    value: Any = None
    multiinput: bool = False
    items: tuple[str, ...] = ()


class NodeType(msgspec.Struct, frozen=True, kw_only=True):
    """How nodes of one path run: a Python implementation (`module`) or an `executor`."""

    path: NodePath
    terminals: tuple[TerminalSpec, ...] = ()
    module: str | None = None  # has NODES[path]: the callable run by worker.nodelib.run
    executor: str | None = None  # a broker job node: a native node of this executor
    file_ext: str | None = None  # the node writes `<node id><file_ext>` (declared output)

    @property
    def is_job(self) -> bool:
        return self.executor is not None


def inp(
    name: str, value: Any = None, dtype: str = FLOAT, widget: str | None = "doublespinbox",
    *, multi: bool = False, items: tuple[str, ...] = (),
) -> TerminalSpec:
    return TerminalSpec(
        name=name, is_input=True, dtype=dtype, widget=widget, value=value, multiinput=multi,
        items=items,
    )


def out(name: str, dtype: str = FLOAT, widget: str | None = "display", value: Any = None
        ) -> TerminalSpec:
    return TerminalSpec(name=name, is_input=False, dtype=dtype, widget=widget, value=value)


def _types(module: str, *specs: tuple[str, tuple[TerminalSpec, ...]], lib: str,
           file_ext: str | None = None) -> dict[NodePath, NodeType]:
    return {
        (lib, name): NodeType(path=(lib, name), terminals=terms, module=module, file_ext=file_ext)
        for name, terms in specs
    }


_RESULT = out("result")
_MATH = "worker.nodelib.lib_math"
MATH = _types(
    _MATH,
    ("Add", (inp("input", None, widget=None, multi=True), _RESULT)),
    ("Subtract", (inp("minuend", multi=True), inp("subtrahend", multi=True), _RESULT)),
    ("Multiply", (inp("input", None, widget=None, multi=True), _RESULT)),
    ("Divide", (inp("dividend", multi=True), inp("divisor", 1.0, multi=True), _RESULT)),
    ("Power", (inp("base", 0.0, widget="lineedit", multi=True),
               inp("exponent", 0.0, widget="lineedit", multi=True), _RESULT)),
    ("Root", (inp("radicand"), inp("degree", 2.0), _RESULT)),
    ("Modulo", (inp("dividend"), inp("divisor", 1.0), _RESULT)),
    lib="math",
)

TYPES = _types(
    "worker.nodelib.lib_types",
    ("Float", (out("float", FLOAT, "doublespinbox", 0.0),)),
    ("Integer", (out("int", INT, "spinbox", 0),)),
    ("String", (out("string", STR, "lineedit", ""),)),
    ("Boolean", (out("bool", BOOL, "checkbox", False),)),
    lib="types",
)

NUMPY_DTYPES = ("int", "int0", "int8", "int16", "int32", "int64",
                "float", "foat16", "float32", "float64")  # sic: Nodeworks' own list
TRIG_OPERATIONS = ("sin", "sinh", "cos", "cosh", "tan", "tanh")
NUMPY = _types(
    "worker.nodelib.lib_numpy",
    ("Range", (inp("start", 0), inp("stop", 10), inp("step", 1),
               inp("type", "float", STR, "combobox", items=NUMPY_DTYPES),
               out("range", ARRAY, None))),
    ("Linspace", (inp("start", 0.0), inp("stop", 1.0), inp("num", 50, INT, "spinbox"),
                  out("array", ARRAY, None))),
    ("Trig", (inp("input", None, ARRAY, None),
              inp("operation", "sin", STR, "combobox", items=TRIG_OPERATIONS),
              out("array", ARRAY, None))),
    lib="numpy",
)

MATPLOTLIB = _types(
    "worker.nodelib.lib_matplotlib",
    ("Plot", (inp("x", [], ARRAY, None, multi=True), inp("y", [], ARRAY, None, multi=True))),
    lib="matplotlib",
    file_ext=".png",
)

# Broker job nodes: the settings terminals (typed in, or connected to a `types` node) and the
# executor. Every job node also has `input` (multiinput: dependencies only; the values arrive
# in the task's $DAGB_INPUTS) and `result` (the JSON the task wrote to $DAGB_RESULT).
_S = {
    "command": inp("command", "", STR, "lineedit"),
    "workdir": inp("workdir", "", STR, "lineedit"),
    "timeout": inp("timeout", 0.0),
    "retries": inp("retries", 0, INT, "spinbox"),
    "callable": inp("callable", "", STR, "lineedit"),
    "script": inp("script", "", STR, "lineedit"),
    "kwargs": inp("kwargs", {}, DICT, None),
    "cores": inp("cores", 1, INT, "spinbox"),
    "memory": inp("memory", "", STR, "lineedit"),
    "walltime": inp("walltime", "", STR, "lineedit"),
    "host": inp("host", "", STR, "lineedit"),
    "image": inp("image", "", STR, "lineedit"),
    "wait_for": inp("wait_for", "", STR, "lineedit"),
}
JOB_SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (executor, settings terminals)
    "bash": ("shell", ("command", "workdir", "timeout", "retries")),
    "python": ("python", ("callable", "script", "kwargs", "workdir", "timeout", "retries")),
    "slurm": ("slurm", ("command", "cores", "memory", "walltime", "workdir", "timeout",
                        "retries")),
    "ssh": ("ssh", ("host", "command", "timeout", "retries")),
    "aws_batch": ("aws_batch", ("image", "command", "cores", "memory", "timeout", "retries")),
    "event": ("event", ("wait_for", "timeout")),
    "noop": ("noop", ()),
}
JOB_INPUT = inp("input", None, ANY, None, multi=True)
JOB_RESULT = out("result", ANY, None)
BROKER = {
    ("broker", name): NodeType(
        path=("broker", name),
        terminals=(*(_S[s] for s in settings), JOB_INPUT, JOB_RESULT),
        executor=executor,
    )
    for name, (executor, settings) in JOB_SETTINGS.items()
}
JOB_PATHS = {nt.executor: path for path, nt in BROKER.items()}  # executor → job node path

BUILTIN: dict[NodePath, NodeType] = {**MATH, **TYPES, **NUMPY, **MATPLOTLIB, **BROKER}


def _plugin_paths(module_name: str, nodes: Any) -> list[NodePath]:
    if not isinstance(nodes, Mapping):
        raise ValueError(f"nodeworks plugin {module_name!r}: NODES must be a mapping")
    paths: list[NodePath] = []
    for key, impl in nodes.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise ValueError(
                f"nodeworks plugin {module_name!r}: key {key!r} is not (library, name)"
            )
        if not callable(impl):
            raise ValueError(f"nodeworks plugin {module_name!r}: NODES[{key!r}] is not callable")
        paths.append((key[0], key[1]))
    return paths


def load_plugins(module_names: Iterable[str]) -> dict[NodePath, NodeType]:
    """Import each plugin module and return its node types (for `convert_chart(plugins=)`).

    Blocking (imports): call it at startup, or through `asyncio.to_thread`. Raises
    ValueError for a malformed NODES, or a path that a built-in or another plugin has.
    """
    found: dict[NodePath, NodeType] = {}
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"nodeworks plugin {module_name!r} cannot be imported: {e}") from e
        for path in _plugin_paths(module_name, getattr(module, "NODES", None)):
            owner = "built-in" if path in BUILTIN else (
                found[path].module if path in found else None
            )
            if owner:
                raise ValueError(
                    f"nodeworks plugin {module_name!r}: node {list(path)} is already "
                    f"defined ({owner})"
                )
            found[path] = NodeType(path=path, module=module_name)
    return found


def registry(plugins: Mapping[NodePath, NodeType] | None = None) -> dict[NodePath, NodeType]:
    """Built-in node types plus the given plugins'."""
    return {**BUILTIN, **(plugins or {})}

