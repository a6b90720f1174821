"""Broker job nodes (library `broker`) ↔ native nodes of their executor; pure.

| node                 | executor    | settings terminals (inputs)                                |
|----------------------|-------------|------------------------------------------------------------|
| `broker / bash`      | `shell`     | command, workdir, timeout, retries                         |
| `broker / python`    | `python`    | callable or script, kwargs, workdir, timeout, retries      |
| `broker / slurm`     | `slurm`     | command, cores, memory, walltime, workdir, timeout, retries|
| `broker / ssh`       | `ssh`       | host, command, timeout, retries                            |
| `broker / aws_batch` | `aws_batch` | image, command, cores, memory, timeout, retries            |
| `broker / event`     | `event`     | wait_for, timeout                                          |
| `broker / noop`      | `noop`      | (none)                                                     |

Every job node also has the multiinput `input` (connections there only order the job after
their sources; the values arrive in `$DAGB_INPUTS`) and the output `result` (what the job
wrote to `$DAGB_RESULT`; a connection from it passes that whole value). A setting is typed
into its terminal, or connected to a `types` node (Float, Integer, String, Boolean) whose
value is then used; empty strings, 0 timeouts and 0 retries mean "not set".
"""

from __future__ import annotations

import shlex
from typing import Any

from broker.nodeworks.library import JOB_PATHS, JOB_SETTINGS, NodePath

# terminal → (native field, accepted types); "resources.x" goes into the node's resources.
_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "command": ("command", (str,)),
    "workdir": ("workdir", (str,)),
    "timeout": ("timeout", (int, float)),
    "retries": ("retries", (int,)),
    "callable": ("callable", (str,)),
    "script": ("script", (str,)),
    "kwargs": ("kwargs", (dict,)),
    "cores": ("resources.cores", (int, float)),
    "memory": ("resources.memory", (str, int)),
    "walltime": ("resources.walltime", (str, int, float)),
    "host": ("host", (str,)),
    "image": ("image", (str,)),
    "wait_for": ("wait_for", (str,)),
}


def _unset(value: Any) -> bool:
    return value is None or value == "" or value == {} or (
        not isinstance(value, bool) and isinstance(value, int | float) and value == 0
    )


def setting_field(terminal: str, value: Any) -> tuple[str, Any] | None:
    """(native field, value) for one settings terminal; None when unset. ValueError if the
    value has the wrong type."""
    field, types = _FIELDS[terminal]
    if _unset(value):
        return None
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise ValueError(f"terminal {terminal!r} needs a {names}, got {value!r}")
    return field, value


def native_job(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The native node (without `after`) of the job node `broker / name`.

    `settings` maps each settings terminal to its value; raises ValueError on a bad value.
    """
    executor, allowed = JOB_SETTINGS[name]
    node: dict[str, Any] = {"executor": executor}
    for terminal in allowed:
        got = setting_field(terminal, settings.get(terminal))
        if got is None:
            continue
        field, value = got
        if field.startswith("resources."):
            node.setdefault("resources", {})[field.split(".", 1)[1]] = value
        else:
            node[field] = value
    if executor == "python" and "callable" in node:
        node.pop("script", None)
    if "kwargs" in node and "callable" not in node:
        node.pop("kwargs")
    return node


def _pick(node: dict[str, Any], defaults: dict[str, Any], field: str) -> Any:
    value = node.get(field)
    return defaults.get(field) if value is None else value


def job_settings(node: dict[str, Any], defaults: dict[str, Any]) -> tuple[NodePath, dict[str, Any]]:
    """For export: a native node as (job node path, {settings terminal: value})."""
    executor = _pick(node, defaults, "executor") or "shell"
    if node.get("kind") == "ensemble":
        executor = "noop"
    path = JOB_PATHS.get(executor, ("broker", "noop"))
    _, allowed = JOB_SETTINGS[path[1]]
    resources = _pick(node, defaults, "resources") or {}
    values: dict[str, Any] = {}
    for terminal in allowed:
        field = _FIELDS[terminal][0]
        if field.startswith("resources."):
            value = resources.get(field.split(".", 1)[1])
        elif field in ("workdir", "timeout", "retries"):
            value = _pick(node, defaults, field)
        else:
            value = node.get(field)
        if terminal == "command" and isinstance(value, list):
            value = shlex.join(str(v) for v in value)
        if value is not None:
            values[terminal] = value
    return path, values
