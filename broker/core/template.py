"""`{{ name }}` placeholders in commands, scripts, env and kwargs.

Names resolve against the run's parameters, the task's matrix values and a few built-ins
(`run`, `node`, `task`, `attempt`). In a shell command string each substituted value is
shell-quoted; in an argv list, a script, env or kwargs it is inserted as text.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
BUILTINS = frozenset({"run", "node", "task", "attempt"})


def placeholders(text: str) -> list[str]:
    """Names referenced in `text`, in order of appearance."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _lookup(name: str, values: Mapping[str, Any]) -> Any:
    # "params.x" and "matrix.x" are accepted spellings of "x".
    for prefix in ("params.", "matrix."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name not in values:
        raise KeyError(name)
    return values[name]


def render(text: str, values: Mapping[str, Any], *, shell_quote: bool = False) -> str:
    """Substitute every placeholder; raises KeyError for an unknown name."""

    def sub(m: re.Match[str]) -> str:
        value = _as_text(_lookup(m.group(1), values))
        return shlex.quote(value) if shell_quote else value

    return PLACEHOLDER.sub(sub, text)


def render_any(value: Any, values: Mapping[str, Any]) -> Any:
    """Render strings inside nested lists/dicts (kwargs); a lone placeholder keeps its type."""
    if isinstance(value, str):
        m = PLACEHOLDER.fullmatch(value.strip())
        if m:
            return _lookup(m.group(1), values)
        return render(value, values)
    if isinstance(value, list):
        return [render_any(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render_any(v, values) for k, v in value.items()}
    return value


def known_name(name: str, declared: set[str]) -> bool:
    """Whether a placeholder name can resolve (used at publish time)."""
    for prefix in ("params.", "matrix."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name in declared or name in BUILTINS
